"""``python -m theory_checks.bench``: time reading and checking a 1,000,000-sample batches.json.

Prints ``theory_checks.benchmark.bench_graph_check()`` as JSON (the same numbers
``python -m ufm.bench`` reports under "graph_check").
"""

from __future__ import annotations

from typing import Sequence

from ufm.cli.args import Parser

__all__ = ["main", "build_parser"]


def build_parser() -> Parser:
    return Parser(prog="python -m theory_checks.bench",
                  description="Write a batches.json of 1,000,000 samples x 10 epochs of batches of 50 "
                              "to a temporary folder, then time reading and checking it (target: "
                              "<= 10 s); prints the timings as JSON.")


def main(argv: Sequence[str] | None = None) -> int:
    build_parser().parse_args(argv)
    from theory_checks.benchmark import bench_graph_check
    from ufm.core.jsonable import to_json

    print(to_json(bench_graph_check(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
