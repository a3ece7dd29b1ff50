"""Entry point of ``python -m ufm.analyze`` (the code lives in ``ufm.cli.analyze_cmd``).

``ufm.analyze`` is the analysis FUNCTION (``ufm.analysis.report.analyze``); this file only
serves ``python -m``. Importing it as a module (``import ufm.analyze``) would shadow the
function, so on import it puts the function in its own place in ``sys.modules``.
"""

import sys

if __name__ == "__main__":
    from ufm.cli.signals import run_main  # signals first, then the command line

    run_main("ufm.cli.analyze_cmd")
else:
    from ufm.analysis.report import analyze as _analyze

    sys.modules[__name__] = _analyze  # type: ignore[assignment]
