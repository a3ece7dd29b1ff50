"""Regenerate every figure: ``python -m figures.make [--quick] [--out DIR] [--only NAME ...]``.

The figures are computed and drawn by ``figures.build.make``; the key numbers of every figure,
the configuration and the library versions go to ``summary.json`` in the output folder (with
``--only`` the entries of the other figures already there are kept when the mode matches).
``--quick`` uses tiny sizes (the tests run it); the default sizes are the README's.
"""

from __future__ import annotations

from pathlib import Path

from figures.build import FIGURES, make
from ufm.cli.args import Parser, output_dir

__all__ = ["main", "build_parser"]


def build_parser() -> Parser:
    parser = Parser(prog="python -m figures.make", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for the tests)")
    parser.add_argument("--out", type=output_dir, default=str(Path(__file__).resolve().parent),
                        help="output folder (default: the figures package folder)")
    parser.add_argument("--only", nargs="+", choices=list(FIGURES), metavar="NAME",
                        help=f"figures to make (default: all): {', '.join(FIGURES)}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    make(args.only or list(FIGURES), Path(args.out), args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
