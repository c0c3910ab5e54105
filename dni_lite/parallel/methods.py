"""Five ways to train one MLP, measured side by side on the same machine.

On the same model, data, batches, optimiser and K workers:

* ``backprop_1worker``: plain backprop in one process on one thread (what
  each worker of a pipeline has): the headline ratios are against it;
* ``backprop_all_cores``: the same using every core (intra-op threads),
  the competitor to beat on one shared-memory machine;
* ``gpipe`` and ``1f1b``: pipeline-parallel backprop from
  ``torch.distributed.pipelining`` on K processes (exact gradients), at the
  best micro-batch count of a short sweep;
* ``dni_pipeline``: the decoupled pipeline (``train_parallel``), its stages
  chosen from measured per-layer costs (``balance.balanced``);

and the DNI pipeline's control, ``dni_pipeline_zero_sg``: the same run with its
synthesizers' output zeroed, so every stage below the top one stays as
initialised (Adam moves nothing on a zero gradient). Its test accuracy says
whether the synthetic gradients taught the lower stages anything at all
(``control_words``): a fast pipeline whose synthetic gradients do worse than
leaving the lower stages alone has bought nothing. For both, ``interfaces`` records
what each lower stage sends up at the end (``interface_words``): how many of its
units died, and how far its output moved.

Each round also measures the machine's *ceiling* (``ceiling.train_copies``): K
copies of one-worker backprop trained at once. No K-worker scheme of this model
can run faster here, so it says how much of a ratio goal the machine allows
before any method is to blame (``ceiling_words``).

Where a CUDA GPU is present (``cuda=None`` uses it, ``False`` ignores it) two
more run on it: ``backprop_gpu`` and ``dni_1process_gpu`` (the DNI schedule in
one process; the pipelines stay on the CPU: gloo moves CPU tensors). Every
method's entry in the result names the device its figures came from.

Every method runs ``repeats`` times, interleaved (the order rotates each
round), and figures are medians. Each row also carries notebook 00's
simulator's prediction for each scheme from the per-stage costs measured
here. ``compare_methods`` is an experiment (Progress heartbeats, then a row);
``run`` drives it and writes a JSON results file with its provenance.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch

from ..data.datasets import Dataset
from ..experiments import timeline
from ..interface import control_name
from ..provenance import provenance as _provenance
from ..runner import Progress, Settings
from ..validate import check_bool, check_float, check_int
from .balance import balanced
from .bench import _in_background, stage_costs, steps_to_accuracy, summary, time_to_accuracy
from .ceiling import train_copies
from .config import ParallelConfig
from .devices import device_name
from .launch import train_parallel
from .pipeline_backprop import (SCHEDULES, check_micro_batches, sweep_pipeline_backprop,
                                train_pipeline_backprop)
from .reference import train_backprop, train_in_process
from .stage import interface_health, load_data

METHODS = ("backprop_1worker", "backprop_all_cores", "gpipe", "1f1b", "dni_pipeline")
# the DNI pipeline with its synthesizers zeroed: what its lower stages learned from them
CONTROL = control_name("dni_pipeline", "zero_synthetic_gradient")
MEASURED = METHODS + (CONTROL,)     # what every run measures on the CPU
METHOD_NAMES = {"backprop_1worker": "backprop, 1 worker", "backprop_all_cores": "backprop, all cores",
                "gpipe": "GPipe", "1f1b": "1F1B", "dni_pipeline": "DNI pipeline",
                CONTROL: "DNI pipeline, SG zeroed"}
GPU_METHODS = ("backprop_gpu", "dni_1process_gpu")
METHOD_NAMES.update({"backprop_gpu": "backprop, GPU", "dni_1process_gpu": "DNI, 1 process, GPU"})
# what notebook 00's simulator calls each scheme
SCHEMES = {"backprop_1worker": "backprop", "gpipe": "gpipe", "1f1b": "1f1b",
           "dni_pipeline": "decoupled"}


@dataclass(frozen=True)
class MethodsSettings(Settings):
    """One model and its budget; ``preset`` names in ``PRESETS`` give the two standard ones.

    ``micro_batches``: the GPipe/1F1B counts tried (the best is kept);
    ``balance``: choose the DNI pipeline's stages from measured costs;
    ``synth_kind``: the DNI pipeline's synthesizers (``synthesizer.KINDS``), and
    ``synth_projection``: how many fixed random directions of the activation they see (0: all
    of it; ``Synthesizer``'s ``projection``). Both presets use linear synthesizers on 128
    random directions. A full linear synthesizer costs two of a layer's three products (its
    prediction and its weight gradient); on 128 directions it costs about half as much at
    width 512 and under a third at width 1024 (compare ``stage_costs_s`` of a run with
    ``--synth-projection 0``), and its synthetic gradients beat their control by as much
    (seeds 0-4). The MLP synthesizer (64 hidden units) is as cheap, but its synthetic
    gradients did far worse than zeroing them on both models.
    ``target_delay``: the DNI pipeline's (``ParallelConfig.target_delay``).
    ``ceiling``: also measure, each round, K copies of one-worker backprop trained at once
    (``ceiling.train_copies``): the most any K-worker scheme of this model can do here.
    ``lr``, ``synth_lr``: Adam's for every method's layers, and for the DNI pipeline's
    synthesizers. The layers learn at notebook 03's 3e-4 and the synthesizers 100 times
    faster or more: Adam moves every weight by about its learning rate whatever the size of
    the synthetic gradient, so the layers must move slowly while the synthesizers learn fast.
    At 1e-3 for both, the default model's synthetic gradients do worse than zeroing them.
    """

    workers: int = 2
    depth: int = 5
    width: int = 512
    batch_size: int = 128
    steps: int = 300
    eval_every: int = 25
    target_accuracy: float = 46.0
    repeats: int = 3
    micro_batches: tuple[int, ...] = (2, 4, 8)
    balance: bool = True
    lr: float = 3e-4
    synth_lr: float = 3e-2
    synth_kind: str = "linear"
    synth_projection: int = 128
    target_delay: int = 1
    seed: int = 0
    ceiling: bool = True
    cuda: bool | None = None

    def validate(self) -> None:
        check_int("workers", self.workers, 2, 8)
        check_int("depth", self.depth, 1, 64)
        if self.workers > self.depth + 1:
            raise ValueError(f"workers must be at most depth + 1 = {self.depth + 1} (one layer "
                             f"per stage at least), got {self.workers}")
        check_int("width", self.width, 1, 8192)
        check_int("batch_size", self.batch_size, 2, 65536)
        check_int("steps", self.steps, 1)
        check_int("eval_every", self.eval_every, 1)
        check_float("target_accuracy", self.target_accuracy, 0.0, 100.0)
        check_int("repeats", self.repeats, 1, 20)
        if not isinstance(self.micro_batches, tuple) or not self.micro_batches:
            raise ValueError(f"micro_batches must be a non-empty tuple of counts, "
                             f"got {self.micro_batches!r}")
        config = self.config()     # checks the fields only the DNI pipeline reads (synth_kind, target_delay)
        for m in self.micro_batches:
            check_micro_batches(config, m)
        check_bool("balance", self.balance)
        check_float("lr", self.lr, 0.0, 1.0, low_open=True)
        check_float("synth_lr", self.synth_lr, 0.0, 1.0, low_open=True)
        check_int("seed", self.seed, 0)
        check_bool("ceiling", self.ceiling)
        if self.cuda is not None and not isinstance(self.cuda, bool):
            raise ValueError(f"cuda must be True, False or None, got {self.cuda!r}")
        if self.cuda and not torch.cuda.is_available():
            raise ValueError("cuda=True was asked for but no CUDA GPU is available")

    def methods(self) -> tuple[str, ...]:
        """The methods this run measures: the five, the DNI pipeline's control, and the GPU
        ones where a GPU is used."""
        use = torch.cuda.is_available() if self.cuda is None else self.cuda
        return MEASURED + GPU_METHODS if use else MEASURED

    def config(self) -> ParallelConfig:
        """The run every method shares (no BatchNorm: micro-batches would change it)."""
        return ParallelConfig(workers=self.workers, depth=self.depth, width=self.width,
                              batch_size=self.batch_size, steps=self.steps,
                              eval_every=self.eval_every, lr=self.lr, synth_lr=self.synth_lr,
                              seed=self.seed,
                              synth_kind=self.synth_kind,
                              synth_projection=self.synth_projection, target_delay=self.target_delay,
                              batchnorm=False, timeout_s=600.0).validate()


PRESETS = {
    # notebook 07's benchmark model: wide enough for its stages to outrun one-worker backprop,
    # and its synthetic gradients beat their control (by 5.8-7.6 points on seeds 0-4 in one
    # process); its target sits above what that control reaches in 300 steps (42-45%)
    "default": MethodsSettings(),
    # heavy: each stage has several times the default's work. Its target sits above what its top
    # stage reaches alone over random lower features (the zero-synthetic-gradient control peaks
    # at 43-46% within 240 steps on seeds 0-2), so reaching it takes learning below the
    # interface. Its synthesizers learn at 1e-1: on seeds 0-4 (one process) they beat that
    # control by 0.1-9.3 points (mean 4.8), at 5e-2 by -5.4 to +6.5
    "heavy": MethodsSettings(depth=7, width=1024, batch_size=256, steps=240, eval_every=20,
                             target_accuracy=48.0, synth_lr=1e-1),
}


def compare_methods(settings: MethodsSettings | None = None, **overrides: Any
                    ) -> Iterator[dict[str, float] | Progress]:
    """Measure the five methods and the control; yield Progress heartbeats, and a row per round.

    Row keys follow ``<metric>/<method>``: ``examples_per_s``, ``seconds_to_target``
    (absent while the target is not reached),
    ``accuracy`` (medians over the rounds so far), ``speedup`` (over one-worker
    backprop), ``speedup_vs_all_cores``, ``predicted_examples_per_s`` (the
    simulator, where it models the scheme); ``repeat`` counts the rounds.
    Returns the full result (``run`` writes it as JSON).
    """
    s = MethodsSettings.build(settings, **overrides)
    config = s.config()
    data = load_data(s.seed)
    cores = os.cpu_count() or 1
    stop = threading.Event()
    started = time.perf_counter()
    names = s.methods()
    total = len(s.micro_batches) * 2 + s.repeats * (len(names) + s.ceiling) + 2
    done = 0

    # 1. the DNI pipeline's stages, from measured per-layer costs
    dni_config = config
    if s.balance:
        dni_config = yield from _in_background(lambda: balanced(config, data, stop=stop), stop,
                                               done, total, "measuring per-layer costs")
    done += 1
    # 2. the best micro-batch count for each pipeline schedule (one short run each, all in one
    #    start-up of the workers)
    short = dataclasses.replace(config, steps=max(10, s.steps // 4), eval_every=0)
    plan = [(schedule, m) for schedule in SCHEDULES for m in s.micro_batches]
    tried = yield from _in_background(
        lambda: sweep_pipeline_backprop(short, plan, data, stop), stop, done, total,
        f"GPipe and 1F1B: trying {', '.join(map(str, s.micro_batches))} micro-batches")
    done += len(plan)
    sweep: dict[str, dict[int, float]] = {schedule: {} for schedule in SCHEDULES}
    for (schedule, m), run in zip(plan, tried):
        sweep[schedule][m] = run["examples_per_s"]
    best_m = {schedule: max(counts, key=counts.get) for schedule, counts in sweep.items()}
    # 3. the five methods and the control, interleaved
    runners = {
        "backprop_1worker": lambda: train_backprop(config, data, threads=1, stop=stop),
        "backprop_all_cores": lambda: train_backprop(config, data, threads=cores, stop=stop),
        "gpipe": lambda: train_pipeline_backprop(config, "gpipe", best_m["gpipe"], data, stop),
        "1f1b": lambda: train_pipeline_backprop(config, "1f1b", best_m["1f1b"], data, stop),
        "dni_pipeline": lambda: _with_health(train_parallel(dni_config, data=data, stop=stop),
                                            dni_config, data),
        CONTROL: lambda: _with_health(train_parallel(dataclasses.replace(
            dni_config, ablation="zero_synthetic_gradient"), data=data, stop=stop), dni_config, data),
        "backprop_gpu": lambda: train_backprop(config, data, device="cuda", stop=stop),
        "dni_1process_gpu": lambda: _with_health(
            train_in_process(dni_config, data, device="cuda", stop=stop), dni_config, data),
    }
    devices = {name: ("cuda" if name in GPU_METHODS else "cpu") for name in names}
    costs = yield from _in_background(lambda: stage_costs(dni_config, data, stop=stop), stop,
                                      done, total, "measuring per-stage costs for the simulator")
    done += 1
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    copies: list[dict[str, Any]] = []
    for r in range(s.repeats):
        order = list(names[r % len(names):] + names[:r % len(names)])
        for name in order:
            run = yield from _in_background(runners[name], stop, done, total,
                                            f"{METHOD_NAMES[name]}, repeat {r + 1} of {s.repeats}")
            runs[name].append(run)
            done += 1
        if s.ceiling:
            copy_run = yield from _in_background(
                lambda: train_copies(config, data, stop), stop, done, total,
                f"ceiling: {s.workers} one-worker backprops at once, repeat {r + 1} of {s.repeats}")
            copies.append(copy_run)
            done += 1
        # 4. a row per round: medians so far, and the simulator fed the measured costs
        delay = statistics.median(run["delay_s"] for run in runs["dni_pipeline"])
        predicted = predict(costs, delay, s, best_m)
        row = _row(runs, predicted, s.target_accuracy)
        if copies:
            row["examples_per_s/ceiling"] = statistics.median(x["examples_per_s"] for x in copies)
            row["speedup/ceiling"] = (row["examples_per_s/ceiling"]
                                      / row["examples_per_s/backprop_1worker"])
        row["repeat"] = r + 1
        yield row
    return {"settings": dataclasses.asdict(s), "workers": s.workers, "depth": s.depth,
            "width": s.width, "batch_size": s.batch_size, "device": device_name("cpu"),
            "cpu_count": cores, "stages": list(dni_config.stage_layers()),
            "micro_batches": best_m, "micro_batch_sweep": sweep,
            "methods": {name: {"device": device_name(devices[name]),
                               "threads": runs[name][0].get("threads"),
                               "examples_per_s": row[f"examples_per_s/{name}"],
                               "seconds_to_target": row.get(f"seconds_to_target/{name}", math.inf),
                               "steps_to_target": _steps_to_target(runs[name], s.target_accuracy),
                               "test_accuracy": row[f"accuracy/{name}"],
                               "interfaces": _median_health(runs[name]),
                               "predicted_examples_per_s": predicted.get(name),
                               "runs": [summary(x) for x in runs[name]]}
                        for name in names},
            "ceiling": ({"copies": s.workers, "examples_per_s": row["examples_per_s/ceiling"],
                         "speedup": row["speedup/ceiling"], "runs": copies} if copies else None),
            "row": row, "stage_costs_s": costs, "delay_s": delay,
            "warning": core_warning(cores, s.workers),
            "wall_s": time.perf_counter() - started}


def _with_health(run: dict[str, Any], config: ParallelConfig, data: Dataset) -> dict[str, Any]:
    """A DNI run of ``config`` with ``interfaces``: the health of what each stage below the
    top one sends up at the end (``stage.interface_health``), which explains its accuracy."""
    return {**run, "interfaces": interface_health(config, run["state"], data)}


def _median_health(runs: list[dict[str, Any]]) -> list[dict[str, float]] | None:
    """Per interface, the medians over runs of ``_with_health``'s figures (None for other methods)."""
    if "interfaces" not in runs[0]:
        return None
    return [{key: statistics.median(run["interfaces"][k][key] for run in runs) for key in figures}
            for k, figures in enumerate(runs[0]["interfaces"])]


def _row(runs: dict[str, list[dict[str, Any]]], predicted: dict[str, float],
         target: float) -> dict[str, float]:
    row: dict[str, float] = {}
    for name in runs:
        row[f"examples_per_s/{name}"] = statistics.median(x["examples_per_s"] for x in runs[name])
        seconds = statistics.median(time_to_accuracy(x["evals"], target) for x in runs[name])
        if math.isfinite(seconds):   # "never reached" is no point to plot (and no divergence)
            row[f"seconds_to_target/{name}"] = seconds
        row[f"accuracy/{name}"] = statistics.median(x["test_accuracy"] for x in runs[name])
        if name in predicted:
            row[f"predicted_examples_per_s/{name}"] = predicted[name]
    base = row["examples_per_s/backprop_1worker"]
    for name in runs:
        row[f"speedup/{name}"] = row[f"examples_per_s/{name}"] / base
        row[f"speedup_vs_all_cores/{name}"] = (row[f"examples_per_s/{name}"]
                                              / row["examples_per_s/backprop_all_cores"])
    return row


def predict(costs: dict[str, list[float]], delay: float, s: MethodsSettings,
            micro_batches: dict[str, int]) -> dict[str, float]:
    """Notebook 00's simulator on the measured per-stage costs: examples/s of each scheme
    (backprop on one worker: the same costs one after the other, no messages)."""
    n = min(s.steps, 500)
    with_delay = timeline.Costs(costs["forward"], costs["backward"], costs["synth"], delay)
    one = timeline.Costs(costs["forward"], costs["backward"], 0.0, 0.0)
    out = {"backprop_1worker": timeline.simulate(one, "backprop", n).throughput}
    for name in ("gpipe", "1f1b"):
        out[name] = timeline.simulate(with_delay, name, n, micro_batches[name]).throughput
    out["dni_pipeline"] = timeline.simulate(with_delay, "decoupled", n).throughput
    return {name: value * s.batch_size for name, value in out.items()}


def core_warning(cores: int, workers: int) -> str | None:
    """A warning when the machine has fewer cores than workers plus one (the caller's own)."""
    if cores < workers + 1:
        return (f"this machine has {cores} cores for {workers} workers and the process that "
                f"drives them: the workers share cores, so the pipelines cannot run at full "
                f"speed (figures are a lower bound for a machine with {workers + 1}+ cores)")
    return None


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """Where a results file came from (``dni_lite.provenance``), for ``python -m dni_lite.bench``."""
    return _provenance(" ".join(["python -m dni_lite.bench", *(argv or [])]))


def _synthesizers(settings: dict[str, Any]) -> str:
    """What the DNI pipeline's synthesizers are, in words (older files have no projection)."""
    words = f"{settings['synth_kind']} synthesizers"
    rank = settings.get("synth_projection", 0)
    return f"{words} on {rank} random directions" if rank else words


def format_table(result: dict[str, Any]) -> str:
    """The methods of one results file, one line each, and what they say."""
    s = result["settings"]
    lines = [f"MLP depth {s['depth']} x width {s['width']}, batch {s['batch_size']}, "
             f"{s['workers']} workers, {s['steps']} steps, Adam lr {s['lr']:g}, medians of "
             f"{s['repeats']} interleaved repeats; DNI stages {result['stages']} with "
             f"{_synthesizers(s)} (lr {s['synth_lr']:g}), targets "
             f"{s['target_delay']} step(s) late; micro-batches {result['micro_batches']}",
             f"{'method':<23} {'device':<22} {'ex/s':>8} {'vs 1 worker':>11} {'vs all cores':>12} "
             f"{'predicted ex/s':>14} {'s to ' + format(s['target_accuracy'], '.0f') + '%':>9} "
             f"{'test acc':>8}"]
    for name, m in result["methods"].items():
        ex = m["examples_per_s"]
        pred = m["predicted_examples_per_s"]
        tta = m["seconds_to_target"]
        lines.append(
            f"{METHOD_NAMES[name]:<23} {m.get('device', result['device'])[:22]:<22} {ex:>8.0f} "
            f"{ex / result['methods']['backprop_1worker']['examples_per_s']:>10.2f}x "
            f"{ex / result['methods']['backprop_all_cores']['examples_per_s']:>11.2f}x "
            f"{'-' if pred is None else format(pred, '.0f'):>14} "
            f"{'never' if math.isinf(tta) else format(tta, '.1f'):>9} {m['test_accuracy']:>8.1f}")
    lines.append(control_words(result))
    if result["methods"]["dni_pipeline"].get("interfaces"):
        lines.append(interface_words(result))
    lines.append(time_to_target_words(result))
    lines.append(ceiling_words(result))
    if result.get("warning"):
        lines.append("warning: " + result["warning"])
    return "\n".join(lines)


def _steps_to_target(runs: list[dict[str, Any]], target: float) -> float:
    """Median over runs of the evaluated step where the test accuracy first reached ``target``."""
    return statistics.median(steps_to_accuracy(x["evals"], target) for x in runs)


def control_words(result: dict[str, Any], margin: float = 1.0) -> str:
    """Whether the DNI pipeline's synthetic gradients taught its lower stages anything.

    The control zeroes them, leaving every stage below the top one as initialised;
    the synthetic gradients help only if the DNI pipeline's test accuracy beats it
    by more than ``margin`` points (one seed's run-to-run wobble).
    """
    dni = result["methods"]["dni_pipeline"]["test_accuracy"]
    zeroed = result["methods"][CONTROL]["test_accuracy"]
    if dni > zeroed + margin:
        verdict = "they taught the lower stages something"
    elif dni >= zeroed - margin:
        verdict = (f"no better than leaving the lower stages as initialised (within {margin:g} "
                   f"point{'s' if margin != 1 else ''})")
    else:
        verdict = "they did worse than leaving the lower stages as initialised"
    return (f"synthetic gradients: the DNI pipeline scored {dni:.1f}% against {zeroed:.1f}% "
            f"with its synthesizers zeroed ({dni - zeroed:+.1f} points): {verdict}")


def interface_words(result: dict[str, Any]) -> str:
    """What the synthetic gradients did to the features the lower stages send up.

    The control's lower stages are the initial weights, so its figures are the
    starting point. Units that died (zero on every test example) are features the
    lower stages threw away; the norm says how far their output moved.
    """
    dni = result["methods"]["dni_pipeline"]["interfaces"]
    start = result["methods"][CONTROL]["interfaces"]
    parts = [f"{a['dead']:.0%} of its units dead, mean norm {a['norm']:.2f} "
             f"(as initialised: {b['dead']:.0%}, {b['norm']:.2f})" for a, b in zip(dni, start)]
    if len(parts) == 1:
        return "what the lower stage sends up, on the test set at the end: " + parts[0]
    return ("what the lower stages send up, on the test set at the end: "
            + "; ".join(f"interface {k + 1}: {part}" for k, part in enumerate(parts)))


def time_to_target_words(result: dict[str, Any]) -> str:
    """Why the DNI pipeline does or does not reach the target before all-core backprop.

    Time to target is steps to target / steps per second, so DNI is first exactly when
    its throughput ratio over all-core backprop exceeds its steps ratio to the target.
    """
    m, target = result["methods"], result["settings"]["target_accuracy"]
    dni, bp = m["dni_pipeline"], m["backprop_all_cores"]
    speed = dni["examples_per_s"] / bp["examples_per_s"]
    dni_steps, bp_steps = (_steps_to_target(x["runs"], target) for x in (dni, bp))
    if math.isinf(bp_steps):
        return f"all-core backprop never reached {target:.0f}% in this budget"
    if math.isinf(dni_steps):
        return (f"the DNI pipeline never reached {target:.0f}% (all-core backprop did in "
                f"{bp_steps:.0f} steps): no throughput can make up for that")
    ratio = dni_steps / bp_steps
    first = ("reaches it first (its throughput ratio is above its steps ratio)" if speed > ratio
             else "does not reach it first (it would need a throughput ratio above its steps ratio)")
    return (f"to {target:.0f}%: the DNI pipeline needs {ratio:.2f}x the steps of all-core backprop "
            f"({dni_steps:.0f} vs {bp_steps:.0f}) at {speed:.2f}x its throughput, so it {first}")


def ceiling_words(result: dict[str, Any]) -> str:
    """How fast any K-worker scheme could go here, and how few steps DNI would need to be first.

    The measured ceiling is K copies of one-worker backprop trained at once
    (``result["ceiling"]``, absent from files made without it): each worker of
    a pipeline does at most its share of that work under the same sharing of
    cores, caches and memory. Without it, a perfect pipeline is K times
    one-worker backprop. The simulator fed this run's stage costs bounds the
    DNI pipeline itself. DNI reaches the target before all-core backprop only
    if its steps ratio to backprop is below its throughput ratio.
    """
    m, workers = result["methods"], result["settings"]["workers"]
    all_cores = m["backprop_all_cores"]["examples_per_s"]
    measured = result.get("ceiling")
    if measured:
        ceiling = measured["examples_per_s"] / all_cores
        words = (f"ceiling: {workers} one-worker backprops trained at once run at "
                 f"{measured['speedup']:.2f}x one alone, so no {workers}-worker "
                 f"scheme can beat {ceiling:.2f}x all-core backprop here (the DNI pipeline runs at "
                 f"{m['dni_pipeline']['examples_per_s'] / measured['examples_per_s']:.0%} "
                 f"of that ceiling)")
    else:
        ceiling = workers * m["backprop_1worker"]["examples_per_s"] / all_cores
        words = (f"ceiling: a perfect {workers}-worker pipeline would run at {ceiling:.2f}x "
                 f"all-core backprop here")
    predicted = m["dni_pipeline"].get("predicted_examples_per_s")
    if predicted:
        simulated = predicted / all_cores
        words += f", this one as simulated (its measured costs) at {simulated:.2f}x"
        ceiling = min(ceiling, simulated)
    fewer = "; fewer than exact gradients need" if ceiling < 1 else ""
    return (words + f": to be first, DNI must reach the target in at most {ceiling:.2f}x "
            f"backprop's steps{fewer}")


def run(settings: MethodsSettings, out: str | os.PathLike | None = None,
        argv: list[str] | None = None, log: Any = print) -> dict[str, Any]:
    """Run ``compare_methods`` to the end and write its result with provenance to ``out``."""
    experiment = compare_methods(settings)
    last = None
    while True:
        try:
            item = next(experiment)
        except StopIteration as finished:
            result = finished.value
            break
        if isinstance(item, Progress) and item.what != last:
            log(f"[{item.done}/{item.total}] {item.what}")
            last = item.what
    result["provenance"] = provenance(argv)
    if out is not None:
        Path(out).write_text(json.dumps(result, indent=1))
    return result


def reference_path(preset: str) -> Path:
    """The committed reference run of a preset, beside the course's data (``data/bench_<preset>.json``)."""
    from ..data.tasks import DATA_DIR

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
    return DATA_DIR / f"bench_{preset}.json"


def load(path: str | os.PathLike) -> dict[str, Any]:
    """Read a results file written by ``run``; a file without provenance is refused."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `python -m dni_lite.bench` first")
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not a results file (not JSON: {exc})") from None
    missing = [k for k in ("settings", "methods", "provenance") if k not in result]
    if missing or not set(MEASURED) <= set(result["methods"]) <= set(MEASURED + GPU_METHODS):
        raise ValueError(f"{path} is not a complete results file of python -m dni_lite.bench "
                         f"(missing {missing or 'some methods'})")
    return result

