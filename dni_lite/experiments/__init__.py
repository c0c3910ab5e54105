"""One module per notebook's experiment, each built on the core at the package root.

* ``timeline``: who waits for whom, an event simulator (notebook 00);
* ``linear``: synthetic gradients on a two-layer linear model (notebook 01);
* ``deep_linear``, ``representations``: deep linear networks, BP(lambda), FA/DFA/Kickback,
  CKA and probes (notebook 02);
* ``mlp``: DNI/cDNI at every boundary of an MLP (notebook 03);
* ``unlock``: stochastic, stale and completely unlocked training (notebook 04);
* ``recurrent``: DNI at the truncation boundary of BPTT (notebooks 05 and 06);
* ``hierarchy``: two recurrent networks at two timescales joined by DNI (notebook 08).

Each experiment is a function ``experiment(settings=None, **overrides)`` that
yields rows of metrics and returns a ``runner.Result``; its settings object
(``LinearSettings``, ``MLPSettings``, ...) declares every parameter once.
"""
