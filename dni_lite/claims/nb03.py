"""Notebook 03's claims: decoupled MLP layers learn from their synthesizers.

Controls (trained alongside by ``compare_mlp``): ``no_backprop`` (the hidden
layers never learn), ``dni_no_bootstrap`` (DNI whose synthesizers below the top
regress on zero instead of their bootstrapped targets, so the layers under the
top hidden layer receive nothing) and ``cdni_shuffled`` (cDNI fed another
example's label). Margins are calibrated over seeds 0-4 (``calibrate``).
"""
from __future__ import annotations

import statistics
from typing import Any, Sequence

from ..experiments.mlp import MLPSettings, compare_mlp
from ..runner import run_to_end
from . import require

Rows = Sequence[dict[str, float]]


def measures(rows: Rows, depth: int = 3) -> dict[str, float]:
    """Final test accuracies and, per decoupled copy and layer, the mean cosine of its synthetic
    gradient to the true one over the second half of training (``cos/<variant>/L<k>``)."""
    last = rows[-1]
    out = {k: v for k, v in last.items() if k.startswith("acc/")}
    warm = [r for r in rows if r["epoch"] > rows[-1]["epoch"] / 2]
    keys = {k for r in warm for k in r if k.startswith("cos/")}
    for key in sorted(keys):
        values = [r[key] for r in warm if key in r]
        out[key] = statistics.mean(values)
    return out


def cdni_close_to_backprop(m: dict[str, float], method: str = "cdni",
                           control: str = "cdni_shuffled") -> str:
    """cDNI ends within 8 points of backprop and at least 8 points above its shuffled-label
    control (calibration table in the notebook)."""
    acc, bp, ctrl = m[f"acc/{method}"], m["acc/backprop"], m[f"acc/{control}"]
    require(bp - acc <= 8.0, f"{method} {acc:.1f}% is more than 8 points below backprop {bp:.1f}%")
    require(acc - ctrl >= 8.0, f"{method} {acc:.1f}% is not 8 points above its control "
                               f"{control} {ctrl:.1f}%")
    return ("PASS: cDNI lands within 8 points of backprop, and at least 8 points above the same "
            "network whose synthesizers see another example's label")


def dni_lower_layers_learn(m: dict[str, float], method: str = "dni",
                           control: str = "dni_no_bootstrap", depth: int = 3) -> str:
    """DNI beats its no-bootstrap control by at least 1 point, and the synthetic gradients of its
    lower layers (fed only bootstrapped targets) point the right way: mean cosine >= 0.015 at
    every layer below the top, where the control sends exactly zero (seeds 0-4: +2.1 to +3.3
    points, cosines 0.025-0.049)."""
    acc, ctrl = m[f"acc/{method}"], m[f"acc/{control}"]
    require(acc - ctrl >= 1.0, f"{method} {acc:.1f}% does not beat {control} {ctrl:.1f}% by 1 point")
    for k in range(1, depth):
        cos = m[f"cos/{method}/L{k}"]
        require(cos >= 0.015, f"{method}'s layer {k} synthetic gradient has mean cosine {cos:.3f} "
                              "< 0.015: its bootstrapped synthesizer does not help")
    return ("PASS: DNI's lower layers learn from their bootstrapped synthesizers: cosine >= 0.015 "
            "below the top, and at least 1 point above the copy without bootstrapped targets")


def cdni_cosine_grows_toward_the_top(m: dict[str, float], method: str = "cdni",
                                     depth: int = 3) -> str:
    """cDNI's cosine is >= 0.3 at every layer and grows by >= 0.1 per layer toward the top,
    whose synthesizer alone regresses on the true gradient (seeds 0-4: 0.51 / 0.73 / 0.94)."""
    cos = [m[f"cos/{method}/L{k}"] for k in range(1, depth + 1)]
    require(min(cos) >= 0.3, f"{method}'s cosines {[round(c, 3) for c in cos]} are not all >= 0.3")
    require(all(b >= a + 0.1 for a, b in zip(cos, cos[1:])),
            f"{method}'s cosines {[round(c, 3) for c in cos]} do not grow by 0.1 per layer")
    return ("PASS: cDNI's synthetic gradients point the right way at every layer (cosine >= 0.3), best "
            "at the top: bootstrapped targets lose accuracy on the way down")


def cdni_at_least_dni(m: dict[str, float], method: str = "cdni") -> str:
    """The label helps: cDNI ends at least 5 points above DNI (seeds 0-4: +12.1 to +13.3)."""
    acc, dni = m[f"acc/{method}"], m["acc/dni"]
    require(acc >= dni + 5.0, f"{method} {acc:.1f}% is not 5 points above DNI {dni:.1f}%")
    return "PASS: cDNI ends at least 5 points above DNI: the label is what the synthesizers need most"


def sweep_beats_no_backprop(rows: Rows, methods: Sequence[str] = ("cdni", "backprop")) -> str:
    """At every depth of the sweep, cDNI and backprop err at least 12 points less than the
    no-backprop control, and cDNI within 8 points of backprop."""
    for row in rows:
        for method in methods:
            require(row[f"err/{method}"] <= row["err/no_backprop"] - 12.0,
                    f"depth {row['depth']}: {method} errs {row[f'err/{method}']:.1f}%, not 12 points "
                    f"below no-backprop's {row['err/no_backprop']:.1f}%")
        require(row["err/cdni"] <= row["err/backprop"] + 8.0,
                f"depth {row['depth']}: cDNI errs {row['err/cdni']:.1f}%, more than 8 points above "
                f"backprop's {row['err/backprop']:.1f}%")
    return ("PASS: at every depth of the sweep, cDNI and backprop both err at least 12 points less "
            "than no-backprop, and cDNI within 8 points of backprop")


def calibrate(seeds: Sequence[int] = (0, 1, 2, 3, 4), **settings: Any) -> list[dict[str, float]]:
    """Per seed, the measures the checks compare (notebook 03's calibration table)."""
    table = []
    for seed in seeds:
        rows, result = run_to_end(compare_mlp(MLPSettings(seed=seed, **settings)))
        table.append({"seed": seed, **measures(rows, result.settings.depth)})
    return table
