"""Solvers of the UFM problems: ``solver`` (``solve``: sphere L-BFGS, rotation, orthant polish,
restarts against a proven reference; ``method="auto"`` by cost, a collapsed answer kept only
with its sample-space dual certificate), ``continuation`` (``solve_path``), ``landscape``
(plain local runs), ``gd`` (plain projected gradient descent against the temperature),
``activation`` (the UFM with an activation on the features), ``signs`` (``d = 1``), ``ce``
(cross-entropy under the UFM), built on one optimizer module, ``optim`` (L-BFGS on the sphere,
projected gradient on the orthant, stationarity measures), with ``config`` (``SolverConfig``),
``memory`` and ``rotation``. Built on ``ufm.core``; the certificates they use (the reduced
relaxation as a reference, the dual bound of a collapsed answer, the certificate of an
activation's answer) are imported inside functions; no command line or I/O.
"""
