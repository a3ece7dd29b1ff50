"""Entry point of ``python -m deep.bench``: the command line lives in ``deep.bench_cmd``, the
benchmark in ``deep.benchmark``."""

if __name__ == "__main__":
    from ufm.cli.signals import run_main  # signals first, then the command line

    run_main("deep.bench_cmd")
