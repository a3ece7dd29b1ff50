"""Entry point of ``python -m ufm.solve`` (the code lives in ``ufm.solve_cmd``).

Do not import this module: ``ufm.solve`` is the solver function; run it with ``python -m``.
"""

if __name__ == "__main__":
    from ufm.solve_cmd import main

    raise SystemExit(main())
