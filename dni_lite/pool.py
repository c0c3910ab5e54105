"""Independent training runs side by side: one torch thread each, in a few processes.

Calibration tables and sweeps train the same small experiment for several
seeds or settings. Small models run fastest on one thread, so on a machine with
two cores two runs at once take about the time of one. Every run computes the
same numbers in a worker process as in this one.
"""
from __future__ import annotations

import functools
import multiprocessing
from typing import Any, Callable, Sequence, TypeVar

import torch

from .runner import Result, Settings, run_to_end
from .validate import check_int

Item = TypeVar("Item")
Out = TypeVar("Out")


def map_one_thread(fn: Callable[[Item], Out], items: Sequence[Item], processes: int = 1) -> list[Out]:
    """``[fn(item) for item in items]``, each call with torch on one thread.

    ``processes`` > 1 runs the calls in that many fresh worker processes
    (``spawn``: safe under Jupyter; ``fn`` must be importable from a module).
    Leaving the call, even on an interrupt, terminates the workers at once.
    """
    check_int("processes", processes, 1, 64)
    items = list(items)
    if processes > 1 and len(items) > 1:
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(processes, len(items)), initializer=torch.set_num_threads, initargs=(1,)) as pool:
            return pool.map(fn, items, chunksize=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [fn(item) for item in items]
    finally:
        torch.set_num_threads(threads)


def final_values(experiment: Callable[..., Any], settings: Sequence[Settings], metrics: Sequence[str],
                 processes: int = 1) -> list[dict[str, dict[str, float]]]:
    """Train each of ``settings``; per run, ``{metric: {variant: value in the last row}}`` and
    ``"seconds": {variant: training seconds}``.

    Every variant (``settings.methods``) trains as a job of its own, so
    ``processes`` workers share the work evenly. Only for experiments whose
    variants share no state (own weights, own batches, own curriculum, as in
    the copy task): there a variant trains alone exactly as beside the others.
    """
    jobs = [(index, s.replace(methods=(method,))) for index, s in enumerate(settings) for method in s.methods]
    jobs.sort(key=lambda job: job[1].methods[0] in _NO_SYNTHESIZER)   # the cheapest last: workers end together
    outs = map_one_thread(functools.partial(_final_values, experiment, tuple(metrics)),
                          [s for _, s in jobs], processes)
    merged: list[dict[str, dict[str, float]]] = [{key: {} for key in (*metrics, "seconds")} for _ in settings]
    for (index, _), out in zip(jobs, outs):
        for key, values in out.items():
            merged[index][key].update(values)
    return [{key: {m: run[key][m] for m in s.methods if m in run[key]} for key in run}
            for s, run in zip(settings, merged)]


_NO_SYNTHESIZER = ("backprop", "bptt")


def summary(result: Result, metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """What ``final_values`` keeps of a run: each metric's last values and the seconds, per variant."""
    return {**{metric: result.final(metric) for metric in metrics}, "seconds": dict(result.seconds)}


def _final_values(experiment: Callable[..., Any], metrics: tuple[str, ...], settings: Settings) -> dict:
    return summary(run_to_end(experiment(settings))[1], metrics)
