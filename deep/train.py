"""Entry point of ``python -m deep.train``: the command line lives in ``deep.train_cmd``,
the training in ``deep.training`` (``train_and_evaluate``). This module holds no library code."""

from deep.train_cmd import main

if __name__ == "__main__":
    raise SystemExit(main())
