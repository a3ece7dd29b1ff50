"""Entry point of ``python -m ufm.bench``: the benchmark lives in ``ufm.cli.bench_cmd``. This
module holds no library code."""

from ufm.cli.bench_cmd import main

if __name__ == "__main__":
    raise SystemExit(main())
