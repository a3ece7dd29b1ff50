"""The command lines and file I/O of ``ufm`` (the top layer; no library module imports it):
``args`` (argparse plumbing shared by every CLI of the project: one-line usage errors, exit 2),
``io`` (atomic file output), ``solve_cmd`` (``python -m ufm.solve``), ``certify_cmd``
(``python -m ufm.certify``), ``bench_cmd`` (``python -m ufm.bench``). The ``python -m`` entry
modules are ``ufm/solve.py``, ``ufm/certify.py`` and ``ufm/bench.py``.
"""
