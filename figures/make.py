"""Entry point of ``python -m figures.make``: the command line lives in ``figures.make_cmd``,
the figures in ``figures.build`` and the figure modules."""

if __name__ == "__main__":
    from ufm.cli.signals import run_main  # signals first, then the command line

    run_main("figures.make_cmd")
