"""Entry point of ``python -m theory_checks.batches``: the command line lives in ``theory_checks.batches_cmd``,
the schedules in ``theory_checks.schedules``. This module holds no library code."""

from theory_checks.batches_cmd import main

if __name__ == "__main__":
    raise SystemExit(main())
