"""Entry point of ``python -m theory_checks.bench``: the command line lives in ``theory_checks.bench_cmd``,
the benchmark in ``theory_checks.benchmark``. This module holds no library code."""

from theory_checks.bench_cmd import main

if __name__ == "__main__":
    raise SystemExit(main())
