"""Entry point of ``python -m ufm.certify`` (the code lives in ``ufm.cli.certify_cmd``).

``ufm.certify`` is the FUNCTION (``ufm.certificates.certification.certify``); importing this file as a module
puts that function in its place in ``sys.modules`` so it is not shadowed.
"""

import sys

if __name__ == "__main__":
    from ufm.cli.signals import run_main  # signals first, then the command line

    run_main("ufm.cli.certify_cmd")
else:
    from ufm.certificates.certification import certify as _certify

    sys.modules[__name__] = _certify  # type: ignore[assignment]
