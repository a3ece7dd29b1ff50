"""The math of the problem: labels and imbalance, batchings, the problem type, the SC loss and
its fast full-batch gradient, the closed forms and the geometry metrics (DESIGN.md sections
1-4, 6, 8). Pure functions; imports nothing above it (no solver, certificate, command line or
file I/O).

Modules: ``checks`` (argument checks), ``labels``, ``batching`` (``Batching``), ``problem``
(``Problem``), ``loss`` (``scl_loss``, ``gram_loss``), ``gram_grad`` (the solver's hot path),
``closed_forms``, ``geometry``, ``jsonable``, ``versions``. The public names are re-exported by
``ufm``.
"""
