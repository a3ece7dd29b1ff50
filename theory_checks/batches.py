"""Entry point of ``python -m theory_checks.batches``: the command line lives in ``theory_checks.batches_cmd``,
the schedules in ``theory_checks.schedules``. This module holds no library code."""

if __name__ == "__main__":
    from ufm.cli.signals import run_main  # signals first, then the command line

    run_main("theory_checks.batches_cmd")
