"""dni-lite: synthetic gradients and decoupled neural interfaces, small enough to read.

The core, at the package root, reads in one sitting:

* ``synthesizer.py``: ``Synthesizer`` predicts dL/dh from h and an optional context.
* ``interface.py``: the mechanism. ``label_context`` (where the cDNI label
  enters), ``synthetic_gradient`` (what the lower module receives),
  ``synthesizer_loss`` (the regression toward a true or bootstrapped target),
  the unit convention, and ``DecoupledInterface`` (cut the graph, BP(lambda)).
* ``feedback.py``: FA, DFA and Kickback as fixed synthesizers.
* ``diagnostics.py``: cosine and relative error to the true gradient; accuracy.
* ``runner.py``: ``Settings``, ``seeded``, ``lockstep`` (variants side by side)
  and ``run_to_end``.
* ``validate.py``: argument checks that name the parameter and its range.

Around it: ``experiments/`` (one module per notebook), ``data/`` (data sets,
sequence tasks), ``parallel/`` (one stage per process on torch.distributed),
``display/`` (panels, live plots, controls) and ``exercises/`` (checkers).
"""
from .diagnostics import accuracy, cosine_similarity, relative_error
from .interface import (DecoupledInterface, batch_mean, label_context, per_example,
                        synthesizer_loss, synthetic_gradient)
from .runner import Result, Settings, lockstep, run_to_end, seeded
from .synthesizer import Synthesizer

__all__ = ["Synthesizer", "DecoupledInterface", "label_context", "synthetic_gradient",
           "synthesizer_loss", "per_example", "batch_mean", "cosine_similarity",
           "relative_error", "accuracy", "Settings", "Result", "lockstep", "run_to_end", "seeded"]
__version__ = "0.2.0"
