"""Notebook 02's claims on deep linear networks, each beside its control.

Controls: ``dni_zero_sg`` (DNI whose lower half receives zero: it never moves),
``no_backprop`` (only the last layer learns) and, for BP(lambda), the mix at
lambda = 0.5, which must differ from both ends. Margins: seeds 0-4.
"""
from __future__ import annotations

from typing import Sequence

from ..experiments.deep_linear import (compare_deep_linear, compare_methods, lower_movement,
                                       prediction_ratio, squared_loss)
from ..experiments.representations import linear_cka, rdm_distance
from ..runner import run_to_end
from . import require, tail_mean

Rows = Sequence[dict[str, float]]


def cdni_converges_like_backprop(rows: Rows, method: str = "cdni",
                                 control: str = "dni_zero_sg") -> str:
    """cDNI ends within 15% of backprop's loss with cosine >= 0.9 at the cut, and the control whose
    lower half never moves ends at least 1.3x higher (seeds 0-4: 1.01-1.08x; 0.97-0.98; 2.2-3.3x)."""
    loss, bp, ctrl = (tail_mean(rows, f"test_loss/{v}") for v in (method, "backprop", control))
    cos = tail_mean(rows, f"cos/{method}")
    require(loss <= 1.15 * bp, f"{method}'s loss {loss:.3f} is not within 15% of backprop's {bp:.3f}")
    require(cos >= 0.9, f"{method}'s cosine at the cut is {cos:.3f} < 0.9")
    require(ctrl >= 1.3 * loss, f"the control's loss {ctrl:.3f} is not 1.3x {method}'s {loss:.3f}")
    return ("PASS: the 10-layer network trained with cDNI ends within 15% of backprop's loss, its "
            "synthetic gradient at cosine >= 0.9; with the lower half frozen the loss is >= 1.3x higher")


def dni_learned_a_zero_predictor(rows: Rows, lower_moved: float, prediction_ratio: float,
                                 method: str = "dni") -> str:
    """The trivial solution, told apart from a synthesizer that never moved anything: DNI stalls at
    >= 1.3x backprop's loss with cosine <= 0.5, *after* its lower half moved (>= 3% of its initial
    weights) and while its synthesizer now predicts <= 10% of the true gradient's norm
    (seeds 0-4: 1.6-2.8x, moved 9-16%, predicts 2-3%; the zeroed control moves 0%)."""
    loss, bp = tail_mean(rows, f"test_loss/{method}"), tail_mean(rows, "test_loss/backprop")
    cos = tail_mean(rows, f"cos/{method}")
    require(loss >= 1.3 * bp, f"{method}'s loss {loss:.3f} is not 1.3x backprop's {bp:.3f}: no stall")
    require(cos <= 0.5, f"{method}'s cosine {cos:.3f} is not <= 0.5")
    require(lower_moved >= 0.03, f"{method}'s lower half moved {lower_moved:.1%} of its weights: the "
                                 "synthesizer never moved anything, this is not a learned zero")
    require(prediction_ratio <= 0.1, f"{method}'s synthesizer still predicts {prediction_ratio:.1%} "
                                     "of the true gradient's norm: not a zero predictor")
    return ("PASS: without the label DNI stalls at >= 1.3x backprop's loss: its lower half moved at "
            "first, then its synthesizer learned to predict (almost) zero: the trivial solution")


def lambda_sweep_mixes(rows: Rows, lams: Sequence[float]) -> str:
    """BP(lambda): lambda = 1 is backprop at every logged step; lambda = 0 (no label) stalls at
    >= 1.3x; every lambda >= 0.5 ends within 15%; and lambda = 0.5 really mixes: its trajectory is
    neither backprop's nor lambda = 0's."""
    key = lambda v: f"test_loss/lam={v:g}"          # noqa: E731
    require(all(r[key(1.0)] == r["test_loss/backprop"] for r in rows), "λ=1 left backprop's trajectory")
    bp = tail_mean(rows, "test_loss/backprop")
    final = {v: tail_mean(rows, key(v)) for v in lams}
    require(final[0.0] >= 1.3 * bp, f"λ=0 ends at {final[0.0]:.3f}, not 1.3x backprop's {bp:.3f}")
    require(all(final[v] <= 1.15 * bp for v in lams if v >= 0.5),
            f"not every λ >= 0.5 ends within 15% of backprop: {final}")
    for other in ("test_loss/backprop", key(0.0)):
        require(any(r[key(0.5)] != r[other] for r in rows),
                f"λ=0.5 follows {other} exactly: the mix is not a mix")
    return (f"PASS: λ=1 reproduces backprop at all {len(rows)} logged steps; λ=0 stalls at >= 1.3x; "
            "every λ >= 0.5 ends within 15%; λ=0.5 follows neither end")


def cdni_representations_match_backprop(cka: dict[str, list[float]], rdm: dict[str, list[float]],
                                        method: str = "cdni") -> str:
    """cDNI's layers resemble backprop's: CKA >= 0.8 at every layer and >= 0.2 above the
    no-backprop control's; each layer's RDM distance to its network's last layer within 0.1 of
    backprop's, while the control's first layer is >= 0.1 further
    (seeds 0-4: CKA 0.93-0.98 vs 0.14-0.67; RDM gaps <= 0.07 vs >= 0.12)."""
    require(min(cka[method]) >= 0.8, f"CKA(backprop, {method}) = {cka[method]} is not >= 0.8")
    require(all(c - f >= 0.2 for c, f in zip(cka[method], cka["no_backprop"])),
            f"CKA {cka[method]} is not 0.2 above the control's {cka['no_backprop']}")
    require(all(abs(a - b) <= 0.1 for a, b in zip(rdm[method], rdm["backprop"])),
            f"{method}'s RDM distances {rdm[method]} are not within 0.1 of backprop's {rdm['backprop']}")
    require(rdm["no_backprop"][0] >= rdm["backprop"][0] + 0.1,
            f"the control's first layer {rdm['no_backprop'][0]:.2f} is not 0.1 further than "
            f"backprop's {rdm['backprop'][0]:.2f}: the measure cannot tell them apart")
    return ("PASS: cDNI's layers resemble backprop's by both measures (CKA >= 0.8, RDM distances "
            "within 0.1); the no-backprop network's do not")


def signals_learn(acc: dict[str, float], cos: dict[str, float],
                  methods: Sequence[str] = ("FA", "DFA", "Kickback", "cDNI", "backprop")) -> str:
    """Each method ends >= 10 points above the no-backprop control, and the signals of FA, DFA,
    Kickback and cDNI align with the true gradient (cosine >= 0.2)."""
    for name in methods:
        require(acc[name] >= acc["no backprop"] + 10, f"{name} {acc[name]:.1f}% is not 10 points "
                                                       f"above no-backprop {acc['no backprop']:.1f}%")
    for name in (m for m in methods if m != "backprop"):
        require(cos[name] >= 0.2, f"{name}'s cosine {cos[name]:.2f} is not >= 0.2")
    return ("PASS: FA, DFA, Kickback, cDNI and backprop each beat the no-backprop baseline by >= 10 "
            "points, and the four signals align with the true gradient (cosine >= 0.2)")


def dni_with_mlp_synthesizer_learns(acc: dict[str, float], cos: dict[str, float],
                                    method: str = "DNI") -> str:
    """Label-free DNI with an MLP synthesizer beats no-backprop by >= 5 points, stays >= 5 below
    backprop, and its signal aligns (cosine >= 0.1)."""
    require(acc[method] >= acc["no backprop"] + 5, f"{method} {acc[method]:.1f}% is not 5 points "
                                                   f"above no-backprop {acc['no backprop']:.1f}%")
    require(acc[method] <= acc["backprop"] - 5, f"{method} {acc[method]:.1f}% is within 5 points "
                                                f"of backprop {acc['backprop']:.1f}%")
    require(cos[method] >= 0.1, f"{method}'s cosine {cos[method]:.2f} is not >= 0.1")
    return ("PASS: DNI without the label, with an MLP synthesizer, learns (>= 5 points above "
            "no-backprop, cosine >= 0.1) but stays >= 5 points below backprop")


def cdni_accuracy_matches_backprop(acc: dict[str, float], method: str = "cdni") -> str:
    """cDNI and backprop end within 5 points of each other, both >= 10 points above no-backprop."""
    require(abs(acc[method] - acc["backprop"]) <= 5, f"{method} {acc[method]:.1f}% vs backprop "
                                                     f"{acc['backprop']:.1f}%: more than 5 points apart")
    require(min(acc[method], acc["backprop"]) >= acc["no_backprop"] + 10,
            f"{method} or backprop is not 10 points above no-backprop {acc['no_backprop']:.1f}%")
    return ("PASS: cDNI and backprop reach test accuracies within 5 points of each other, both at "
            "least 10 points above the no-backprop baseline (lower layers never learn)")


def calibrate(seeds: Sequence[int] = (0, 1, 2, 3, 4)) -> list[dict[str, float]]:
    """Per seed, the numbers sections 1 and 2 check (notebook 02's calibration table)."""
    table = []
    for seed in seeds:
        rows, result = run_to_end(compare_deep_linear(seed=seed))
        bp = tail_mean(rows, "test_loss/backprop")
        cut, data = result.settings.depth // 2, result.data
        row = {"seed": seed, **{f"loss_ratio/{v}": tail_mean(rows, f"test_loss/{v}") / bp
                                for v in ("cdni", "dni", "dni_zero_sg")},
               "moved/dni": lower_movement(result.trainers["dni"], cut),
               "moved/dni_zero_sg": lower_movement(result.trainers["dni_zero_sg"], cut),
               "predicts/dni": prediction_ratio(result.trainers["dni"], data.x_test, data.y_test,
                                                squared_loss)}
        _, result = run_to_end(compare_methods(method="cdni", seed=seed))
        acts = {n: t.model.activations(result.data.x_test) for n, t in result.trainers.items()}
        for n in ("cdni", "no_backprop"):
            row[f"min_cka/{n}"] = min(linear_cka(a, b) for a, b in zip(acts["backprop"], acts[n]))
            row[f"rdm_gap_l1/{n}"] = (rdm_distance(acts[n][0], acts[n][-1])
                                      - rdm_distance(acts["backprop"][0], acts["backprop"][-1]))
        table.append(row)
    return table
