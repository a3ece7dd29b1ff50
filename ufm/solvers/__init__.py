"""Solvers of the UFM problems: ``solver`` (``solve``: sphere L-BFGS, rotation, orthant polish,
restarts against a proven reference), ``continuation`` (``solve_path``), ``landscape`` (plain
local runs), ``ce`` (cross-entropy under the UFM), built on one optimizer module, ``optim``
(L-BFGS on the sphere, projected gradient on the orthant, stationarity measures), with
``config`` (``SolverConfig``) and ``rotation``. Built on ``ufm.core``; imports no certificate
module except the reduced relaxation as the solver's reference, and no command line or I/O.
"""
