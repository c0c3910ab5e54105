"""Bounded widgets for experiment settings.

Each factory returns an ipywidget that can only hold valid values (sliders
with limits, dropdowns with fixed options), so a student cannot type a
setting the experiment would reject. None of them takes a value: the panel
gives each control its default from the experiment's settings object, so a
default is written in one place only (``ExperimentPanel`` checks that the
control can show it).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import ipywidgets as widgets

_STYLE = {"description_width": "initial"}
_LAYOUT = {"width": "300px"}


def int_slider(description: str, low: int, high: int, step: int = 1) -> widgets.IntSlider:
    """An integer slider on ``[low, high]``."""
    if not low <= high:
        raise ValueError(f"low must be <= high, got [{low}, {high}]")
    return widgets.IntSlider(value=low, min=low, max=high, step=step, description=description,
                             continuous_update=False, style=_STYLE, layout=_LAYOUT)


def float_slider(description: str, low: float, high: float, step: float = 0.01
                 ) -> widgets.FloatSlider:
    """A float slider on ``[low, high]``."""
    if not low <= high:
        raise ValueError(f"low must be <= high, got [{low}, {high}]")
    return widgets.FloatSlider(value=low, min=low, max=high, step=step, description=description,
                               continuous_update=False, style=_STYLE, layout=_LAYOUT)


def log_slider(description: str, low: float, high: float) -> widgets.FloatLogSlider:
    """A log-scale slider on ``[low, high]`` (both > 0), for learning rates."""
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got [{low}, {high}]")
    return widgets.FloatLogSlider(value=low, base=10, min=math.log10(low), max=math.log10(high),
                                  step=0.05, description=description, readout_format=".2g",
                                  continuous_update=False, style=_STYLE, layout=_LAYOUT)


def dropdown(description: str, options: Sequence[Any]) -> widgets.Dropdown:
    """A choice among fixed options (``(label, value)`` pairs or plain values)."""
    if not options:
        raise ValueError("options must name at least one choice")
    return widgets.Dropdown(options=list(options), description=description,
                            style=_STYLE, layout=_LAYOUT)


def toggle(description: str) -> widgets.Checkbox:
    """An on/off switch."""
    return widgets.Checkbox(value=False, description=description, indent=False,
                            style=_STYLE, layout=_LAYOUT)


def bind(controls: Mapping[str, widgets.ValueWidget], defaults: Any) -> None:
    """Give each control its default from the settings object ``defaults``.

    Fails at once, naming the control, when a name is not a setting or a
    control cannot show its default (a slider would silently clamp it).
    """
    names = {f.name for f in dataclasses.fields(defaults)}
    for name, widget in controls.items():
        if name not in names:
            raise ValueError(f"control {name!r} is not a setting of {type(defaults).__name__}; "
                             f"its settings are {sorted(names)}")
        value = getattr(defaults, name)
        try:
            widget.value = value
        except Exception as exc:   # a dropdown without that option raises a TraitError
            raise ValueError(f"control {name!r} cannot show the default {value!r}: {exc}") from None
        if widget.value != value:
            raise ValueError(f"control {name!r} cannot show the default {value!r} "
                             f"(it shows {widget.value!r}): widen its range")
