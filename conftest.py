"""pytest configuration: doctests run over the package modules, except the ``-m`` entry points."""

collect_ignore = ["ufm/solve.py", "ufm/certify.py", "ufm/analyze.py"]
