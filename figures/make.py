"""Entry point of ``python -m figures.make``: the command line lives in ``figures.make_cmd``,
the figures in ``figures.build`` and the figure modules."""

from figures.make_cmd import main

if __name__ == "__main__":
    raise SystemExit(main())
