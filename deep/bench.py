"""Entry point of ``python -m deep.bench``: the command line lives in ``deep.bench_cmd``, the
benchmark in ``deep.benchmark``."""

from deep.bench_cmd import main

if __name__ == "__main__":
    raise SystemExit(main())
