"""Notebook 01's claims: cDNI's synthetic gradient is the true one, and it trains like backprop.

Controls (trained alongside by ``compare_linear``'s ``controls``):
``cdni_shuffled`` (the label the synthesizer sees is shuffled across the batch)
and ``cdni_zero_sg`` (the lower module receives zero instead of the synthetic
gradient). Margins are calibrated over seeds 0-4 (``calibrate``).
"""
from __future__ import annotations

from typing import Mapping, Sequence

from ..experiments.linear import compare_linear
from ..pool import map_one_thread
from ..runner import run_to_end
from . import require, tail_mean

Rows = Sequence[dict[str, float]]


def cdni_gradient_is_exact(rows: Rows, method: str = "cdni", control: str = "cdni_shuffled") -> str:
    """cDNI's cosine to the true gradient is >= 0.99 over the last 10% of steps, and the
    same synthesizer fed a shuffled label stays at least 0.9 below (seeds 0-4: 0.997 vs <= 0.01)."""
    cos, cos_control = tail_mean(rows, f"cos/{method}"), tail_mean(rows, f"cos/{control}")
    require(cos >= 0.99, f"{method}'s cosine to the true gradient is {cos:.3f}, below 0.99")
    require(cos - cos_control >= 0.9,
            f"{method}'s cosine {cos:.3f} is not 0.9 above its control's ({cos_control:.3f})")
    return ("PASS: cDNI's synthetic gradient points where the true one does (cosine >= 0.99); "
            "with the label shuffled it does not (at least 0.9 lower)")


def cdni_trains_like_backprop(rows: Rows, method: str = "cdni", control: str = "cdni_zero_sg") -> str:
    """cDNI's final test loss is within 5% of backprop's, and the control whose lower module
    receives zero ends at least 2x higher (seeds 0-4: 1.00x vs 2.7-3.1x)."""
    last = rows[-1]
    loss, bp, loss_control = (last[f"test_loss/{v}"] for v in (method, "backprop", control))
    require(loss <= 1.05 * bp, f"{method}'s test loss {loss:.3f} is not within 5% of "
                               f"backprop's {bp:.3f}")
    require(loss_control >= 2.0 * loss, f"the control's loss {loss_control:.3f} is not 2x "
                                        f"{method}'s {loss:.3f}: the lower module's learning "
                                        "does not show")
    return ("PASS: cDNI ends within 5% of backprop's loss; with the synthetic gradient zeroed the "
            "loss stays at least 2x higher")


def dni_stalls_like_the_control(rows: Rows, method: str = "dni", control: str = "cdni_zero_sg") -> str:
    """Label-free DNI ends within 15% of the zero-synthetic-gradient control and at least 2x
    above cDNI, with a cosine near 0 (seeds 0-4: within 5%, 2.8-3.1x, |cos| <= 0.05)."""
    last = rows[-1]
    loss, loss_control, loss_cdni = (last[f"test_loss/{v}"] for v in (method, control, "cdni"))
    cos = tail_mean(rows, f"cos/{method}")
    require(abs(loss - loss_control) <= 0.15 * loss_control,
            f"{method}'s loss {loss:.3f} is not within 15% of the control's {loss_control:.3f}")
    require(loss >= 2.0 * loss_cdni, f"{method}'s loss {loss:.3f} is not 2x cDNI's {loss_cdni:.3f}")
    require(abs(cos) <= 0.1, f"{method}'s cosine {cos:.3f} is not near 0")
    return ("PASS: without the label the synthesizer learns nothing useful: DNI ends where the "
            "zero-synthetic-gradient control ends, its cosine near 0")


def lambda_one_is_backprop(gap_one: float, gap_half: float) -> str:
    """BP(lambda=1) reproduces backprop's parameters (gap <= 1e-6), and lambda=0.5 does not
    (gap > 1e-3): the mix really uses the synthetic part."""
    require(gap_one <= 1e-6, f"with lambda=1 the parameters are {gap_one:.2e} from backprop's")
    require(gap_half > 1e-3, f"with lambda=0.5 the parameters are only {gap_half:.2e} from "
                             "backprop's: the synthetic gradient is not mixed in")
    return ("PASS: with λ=1 the parameters equal backprop's to 1e-6; with λ=0.5 they do not, "
            "so the synthetic half of the mix is used")


def calibrate(seeds: Sequence[int] = (0, 1, 2, 3, 4), runs: Mapping[int, Rows] | None = None,
              processes: int = 1) -> list[dict[str, float]]:
    """Per seed, the numbers the checks above compare (the notebook's calibration table).

    ``runs`` maps a seed to the rows of a default run already trained with it (the
    notebook passes its panel's run): those seeds are not trained again. ``processes``
    > 1 trains the other seeds in that many worker processes, one thread each; every
    seed's numbers are the same as in one process.
    """
    runs = dict(runs or {})
    todo = [seed for seed in seeds if seed not in runs]
    runs.update(zip(todo, map_one_thread(_default_run, todo, processes)))
    return [{"seed": seed, **_calibration_row(runs[seed])} for seed in seeds]


def _default_run(seed: int) -> list[dict[str, float]]:
    """The rows of ``compare_linear`` with default settings and ``seed``."""
    return run_to_end(compare_linear(seed=seed))[0]


def _calibration_row(rows: Rows) -> dict[str, float]:
    last = rows[-1]
    return {**{f"loss/{v}": last[f"test_loss/{v}"] for v in
               ("backprop", "cdni", "dni", "cdni_zero_sg", "cdni_shuffled")},
            **{f"cos/{v}": tail_mean(rows, f"cos/{v}") for v in ("cdni", "dni", "cdni_shuffled")}}
