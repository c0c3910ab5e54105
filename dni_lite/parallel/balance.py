"""Choose the stages of a pipeline from measured costs: the slowest stage sets the pace.

In a pipeline every worker handles every minibatch, so throughput is set by
the busiest worker. A stage's cost is the sum of its layers' forward,
backward and update times plus, for every stage but the last, its
synthesizer's prediction and regression. ``layer_costs`` measures those on
one thread (what a worker has); ``balanced_stages`` splits the layers into K
consecutive groups that minimise the largest stage cost.
"""
from __future__ import annotations

import dataclasses
import statistics
import threading
from typing import Any, Sequence

from ..validate import check_float, check_int
from .bench import stage_costs
from .config import ParallelConfig


def layer_costs(config: ParallelConfig, data: Any = None, repeats: int = 10,
                stop: threading.Event | None = None) -> dict[str, Any]:
    """Median seconds per minibatch, on one thread, of each layer and of one synthesizer.

    ``layers``: forward + backward + Adam update of each of the ``depth + 1``
    layers; ``synth``: one synthesizer's prediction plus its regression step.
    Measured by ``bench.stage_costs`` on the same model cut one layer per stage.
    """
    per_layer = dataclasses.replace(config, workers=config.depth + 1, stages=None).validate()
    costs = stage_costs(per_layer, data, repeats, stop)
    return {"layers": [f + b for f, b in zip(costs["forward"], costs["backward"])],
            "synth": statistics.median(costs["synth"][:-1])}


def balanced_stages(costs: Sequence[float], synth: float, workers: int) -> tuple[int, ...]:
    """Layer counts of ``workers`` consecutive stages that minimise the slowest stage.

    Every stage but the last also pays ``synth``. Ties go to the split whose
    first stages are smaller.
    """
    costs = [check_float(f"costs[{i}]", c, 0.0) for i, c in enumerate(costs)]
    synth = check_float("synth", synth, 0.0)
    n = len(costs)
    k = check_int("workers", workers, 1)
    if not 1 <= k <= n:
        raise ValueError(f"workers must be between 1 and the {n} layers, got {workers}")
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + c)
    # best[j][i]: the smallest slowest-stage cost of putting layers[:i] into j stages
    inf = float("inf")
    best = [[inf] * (n + 1) for _ in range(k + 1)]
    cut = [[0] * (n + 1) for _ in range(k + 1)]
    best[0][0] = 0.0
    for j in range(1, k + 1):
        extra = synth if j < k else 0.0
        for i in range(j, n - (k - j) + 1):
            for start in range(j - 1, i):
                value = max(best[j - 1][start], prefix[i] - prefix[start] + extra)
                if value < best[j][i] - 1e-15:
                    best[j][i], cut[j][i] = value, start
    sizes, i = [], n
    for j in range(k, 0, -1):
        sizes.append(i - cut[j][i])
        i = cut[j][i]
    return tuple(reversed(sizes))


def stage_cost(costs: Sequence[float], synth: float, stages: Sequence[int]) -> list[float]:
    """The cost of each stage of a split (layers plus, but for the last, a synthesizer)."""
    out, start = [], 0
    for k, size in enumerate(stages):
        out.append(sum(costs[start:start + size]) + (synth if k < len(stages) - 1 else 0.0))
        start += size
    return out


def balanced(config: ParallelConfig, data: Any = None, repeats: int = 10,
             stop: threading.Event | None = None) -> ParallelConfig:
    """``config`` with its ``stages`` chosen from costs measured on this machine (``stop``:
    see ``bench.stage_costs``)."""
    measured = layer_costs(config, data, repeats, stop)
    stages = balanced_stages(measured["layers"], measured["synth"], config.workers)
    return dataclasses.replace(config, stages=stages).validate()
