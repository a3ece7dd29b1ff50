"""Entry point of ``python -m ufm.bench``: the benchmark lives in ``ufm.cli.bench_cmd``. This
module holds no library code."""

if __name__ == "__main__":
    from ufm.cli.signals import run_main  # signals first, then the command line

    run_main("ufm.cli.bench_cmd")
