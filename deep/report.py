"""Entry point of ``python -m deep.report``: the command line lives in ``deep.report_cmd``, the
plots and tables in ``deep.reporting``."""

from deep.report_cmd import main

if __name__ == "__main__":
    raise SystemExit(main())
