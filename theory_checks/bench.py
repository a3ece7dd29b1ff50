"""Entry point of ``python -m theory_checks.bench``: the command line lives in ``theory_checks.bench_cmd``,
the benchmark in ``theory_checks.benchmark``. This module holds no library code."""

if __name__ == "__main__":
    from ufm.cli.signals import run_main  # signals first, then the command line

    run_main("theory_checks.bench_cmd")
