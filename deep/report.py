"""Entry point of ``python -m deep.report``: the command line lives in ``deep.report_cmd``, the
plots and tables in ``deep.reporting``."""

if __name__ == "__main__":
    from ufm.cli.signals import run_main  # signals first, then the command line

    run_main("deep.report_cmd")
