"""dni-lite: synthetic gradients and decoupled neural interfaces, small enough to read.

The core pieces, each in its own module:

* ``Synthesizer`` (synthesizer.py): predicts dL/dh from h and an optional context.
* ``DecoupledInterface`` (interface.py): cuts the graph between two modules,
  feeds the lower one a synthetic gradient, regresses the synthesizer toward
  the true or bootstrapped gradient, and mixes the two for BP(lambda).
* ``cosine_similarity``, ``relative_error`` (diagnostics.py): how good a
  synthetic gradient is.
* ``ExperimentPanel``, ``Plot`` (panel.py, live_plot.py): widgets, Run/Stop and
  a live plot around any experiment that yields metric dicts.
"""
from .diagnostics import cosine_similarity, relative_error
from .interface import DecoupledInterface
from .synthesizer import Synthesizer

__all__ = ["Synthesizer", "DecoupledInterface", "cosine_similarity", "relative_error",
           "ExperimentPanel", "Plot"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The display pieces import ipywidgets and plotly; load them only when asked,
    # so ``import dni_lite`` stays fast for scripts and tests that train only.
    if name == "ExperimentPanel":
        from .panel import ExperimentPanel
        return ExperimentPanel
    if name == "Plot":
        from .live_plot import Plot
        return Plot
    raise AttributeError(f"module 'dni_lite' has no attribute {name!r}")
