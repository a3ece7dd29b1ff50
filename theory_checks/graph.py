"""Entry point of ``python -m theory_checks.graph``: the command line lives in ``theory_checks.graph_cmd``,
the check itself in ``theory_checks.interaction``. This module holds no library code."""

from theory_checks.graph_cmd import main

if __name__ == "__main__":
    raise SystemExit(main())
