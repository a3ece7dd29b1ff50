"""Entry point of ``python -m theory_checks.graph``: the command line lives in ``theory_checks.graph_cmd``,
the check itself in ``theory_checks.interaction``. This module holds no library code."""

if __name__ == "__main__":
    from ufm.cli.signals import run_main  # signals first, then the command line

    run_main("theory_checks.graph_cmd")
