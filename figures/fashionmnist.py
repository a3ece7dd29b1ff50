"""Entry point of ``python -m figures.fashionmnist``: the command line lives in
``figures.fashionmnist_cmd``, the computations in ``figures.fashionmnist_summary``."""

if __name__ == "__main__":
    from ufm.cli.signals import run_main  # signals first, then the command line

    run_main("figures.fashionmnist_cmd")
