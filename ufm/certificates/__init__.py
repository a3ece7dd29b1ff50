"""Certificates of global optimality (DESIGN.md section 5): ``rigorous`` (float64 arithmetic
with proven error bounds), ``bound`` (``Bound``, what every method returns), ``dual`` (the
Fenchel dual certificate at a point, class-level or dense), ``relaxation`` (the reduced k x k
and the full N x N convex relaxations) and ``certification`` (``certify``, the method registry
``METHODS`` and the one automatic choice). Built on ``ufm.core``; no command line or I/O.
"""
