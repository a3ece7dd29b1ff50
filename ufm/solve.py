"""Entry point of ``python -m ufm.solve`` (the code lives in ``ufm.cli.solve_cmd``).

``ufm.solve`` is the solver FUNCTION; this file only serves ``python -m``. Importing it as a
module (``import ufm.solve``) would shadow the function, so on import it puts the function in
its own place in ``sys.modules``.
"""

import sys

if __name__ == "__main__":
    from ufm.cli.signals import run_main  # signals first, then the command line

    run_main("ufm.cli.solve_cmd")
else:
    from ufm.solvers.solver import solve as _solve

    sys.modules[__name__] = _solve  # type: ignore[assignment]
