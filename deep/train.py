"""Entry point of ``python -m deep.train``: the command line lives in ``deep.train_cmd``,
the training in ``deep.training`` (``train_and_evaluate``). This module holds no library code."""

if __name__ == "__main__":
    from ufm.cli.signals import run_main  # signals first, then the command line

    run_main("deep.train_cmd")
