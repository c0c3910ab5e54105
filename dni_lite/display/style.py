"""One look per method: the colour, dash and legend name of every line a panel draws.

A metric key names its method (``<metric>/<variant>[/<layer>]``, see
``runner``). Every line of one variant gets that variant's colour in every
subplot of a panel, and the course uses the same colour for the same method
in every notebook (backprop is always blue, DNI orange, cDNI green). A
control (``cdni_shuffled``: cDNI with a mechanism switched off) is drawn in
its method's colour, dashed. Per-layer lines are shades of their method's
colour, darkest for the lowest layer. Reference lines (a noise floor) are
grey and dashed.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..interface import CONTROL_SUFFIX

METHOD_COLOURS = {
    "backprop": "#1f77b4", "bptt": "#1f77b4",
    "dni": "#ff7f0e", "cdni": "#2ca02c", "dni_mlp": "#d62728",
    "dni_one_chunk": "#fdae6b", "dni_noise": "#bdbdbd",
    "no_backprop": "#7f7f7f", "bptt_long": "#17becf",
    "fa": "#9467bd", "dfa": "#8c564b", "kickback": "#e377c2",
    # notebook 07's five ways to train: backprop in blues, pipeline backprop, the DNI pipeline
    "backprop_1worker": "#1f77b4", "backprop_all_cores": "#6baed6",
    "gpipe": "#bcbd22", "1f1b": "#393b79", "dni_pipeline": "#ff7f0e",
}
PALETTE = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#d62728", "#1f77b4",
           "#ff7f0e", "#2ca02c", "#7f7f7f", "#393b79", "#637939"]
NAMES = {"backprop": "backprop", "dni": "DNI", "cdni": "cDNI", "bptt": "BPTT(T)",
         "bptt_long": "BPTT(long T)", "dni_one_chunk": "DNI(T), one-chunk target",
         "dni_noise": "noise at the boundary", "no_backprop": "no backprop", "fa": "FA", "dfa": "DFA",
         "kickback": "Kickback", "backprop_1worker": "backprop, 1 worker",
         "backprop_all_cores": "backprop, all cores", "gpipe": "GPipe", "1f1b": "1F1B",
         "dni_pipeline": "DNI pipeline", "dni_pipeline_zero_sg": "DNI pipeline, SG zeroed"}
REFERENCE_COLOUR = "#444444"
CONTROL_DASHES = ["dash", "dot", "dashdot", "longdash"]


def variant_of(key: str) -> str:
    """The method a metric key belongs to: ``acc/cdni`` -> ``cdni``; ``noise_floor`` -> itself."""
    parts = key.split("/")
    return parts[1] if len(parts) >= 2 else key


def layer_of(key: str) -> str | None:
    """The layer of a per-layer key (``cos/dni/L2`` -> ``L2``), else None."""
    parts = key.split("/")
    return parts[2] if len(parts) >= 3 else None


def control_base(variant: str) -> str | None:
    """The method a control copy belongs to (``cdni_shuffled`` -> ``cdni``), else None."""
    for suffix in CONTROL_SUFFIX.values():
        if variant.endswith("_" + suffix) and len(variant) > len(suffix) + 1:
            return variant[:-len(suffix) - 1]
    return None


def default_label(key: str) -> str:
    """A readable name for a key no label was given for: its method, and its layer."""
    variant, layer = variant_of(key), layer_of(key)
    name = NAMES.get(variant, variant.replace("_", " "))
    return f"{name}, layer {layer.lstrip('L')}" if layer else name


def is_reference(key: str) -> bool:
    """A line that is not a method but a known value to compare with (a floor)."""
    return "floor" in key


@dataclass(frozen=True)
class LineStyle:
    """How one line looks: its colour, dash (``solid``, ``dash``...) and legend group."""

    colour: str
    dash: str
    group: str


class Styles:
    """Assigns colours to variants in the order they first appear, consistently per panel."""

    def __init__(self) -> None:
        self._colours: dict[str, str] = {}
        self._dashes: dict[str, str] = {}

    def colour(self, variant: str) -> str:
        """The variant's colour: the course's colour for a known method, else the next free one."""
        if variant not in self._colours:
            base = control_base(variant)
            if base is not None:
                self._colours[variant] = self.colour(base)
            elif variant in METHOD_COLOURS and METHOD_COLOURS[variant] not in self._used():
                self._colours[variant] = METHOD_COLOURS[variant]
            else:
                taken = self._used() | {c for v, c in METHOD_COLOURS.items() if v != variant}
                free = [c for c in PALETTE if c not in taken] or [
                    c for c in PALETTE if c not in self._used()] or PALETTE
                self._colours[variant] = free[0]
        return self._colours[variant]

    def _used(self) -> set[str]:
        return set(self._colours.values())

    def dash(self, variant: str) -> str:
        """Solid for a method; a dash per control of the same method."""
        if variant not in self._dashes:
            base = control_base(variant)
            if base is None:
                self._dashes[variant] = "solid"
            else:
                siblings = sum(1 for v in self._dashes if control_base(v) == base)
                self._dashes[variant] = CONTROL_DASHES[siblings % len(CONTROL_DASHES)]
        return self._dashes[variant]

    def line(self, key: str, layer_index: int = 0, layers: int = 1) -> LineStyle:
        """The style of ``key``'s line; per-layer lines are shades of the method's colour."""
        variant = variant_of(key)
        if is_reference(key):
            return LineStyle(REFERENCE_COLOUR, "dash", variant)
        colour = self.colour(variant)
        if layers > 1:
            colour = shade(colour, 0.65 * layer_index / (layers - 1))
        return LineStyle(colour, self.dash(variant), variant)


def shade(colour: str, amount: float) -> str:
    """``colour`` mixed with white by ``amount`` in [0, 1] (0: unchanged)."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    mix = [round(c + (255 - c) * amount) for c in (r, g, b)]
    return "#" + "".join(f"{c:02x}" for c in mix)
