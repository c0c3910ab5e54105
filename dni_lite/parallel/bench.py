"""Benchmark: does decoupling turn into wall-clock speed? Measure it, side by side.

``python -m dni_lite.parallel.bench`` trains, for each model width, interleaved and
repeated (figures are medians over the repeats):

* **backprop**: the whole MLP in one process using all cores;
* **DNI, 1 process**: the pipelined schedule run sequentially in one process
  (``parallel.train_in_process``), with the same cores: the extra cost of
  the synthesizers, with no parallelism to pay for it;
* **DNI, K workers**: the real thing (``parallel.train_parallel``), one stage
  per process, one thread per worker, gloo point-to-point messages.

It reports examples per second, time to a target test accuracy, the
speed-up of the pipeline over backprop, the cost of a DNI step relative to a
backprop step, and the speed-up that notebook 00's simulator
(``timeline.simulate``) predicts from the per-module costs measured here
(forward, backward, synthesizer, one message). The table is printed and
written as JSON for notebook 07. Where a CUDA GPU is present the single-process
runs are repeated on it; every row says which device its figures came from.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generator, Iterator, Sequence

import torch

from ..experiments import timeline
from ..interface import label_context
from ..runner import Progress, Settings, check_stop
from ..validate import check_float, check_int
from .config import ParallelConfig
from .devices import device_name
from .launch import train_parallel
from .reference import train_backprop, train_in_process
from .stage import batch_indices, build_stages, load_data

DEFAULT_OUT = "bench_results.json"


def stage_costs(config: ParallelConfig, data: Any = None, repeats: int = 20,
                stop: threading.Event | None = None) -> dict[str, list[float]]:
    """Median seconds per minibatch of each stage's forward, backward+update and synthesizer.

    Measured in this process with one thread (what a worker has). ``forward``
    is the stage's forward pass; ``synth`` the synthesizer's prediction plus
    its regression step; ``backward`` the rest of the stage's step (backward
    pass and optimiser update). Setting ``stop`` raises ``runner.Stopped``
    before the next minibatch.
    """
    check_int("repeats", repeats, 3)
    data = data if data is not None else load_data(config.seed)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        stages = build_stages(config.validate(), data)
        batches = batch_indices(len(data.y), config.batch_size, repeats + 2, config.seed)
        cost: dict[str, list[list[float]]] = {k: [[] for _ in stages]
                                              for k in ("forward", "backward", "synth")}
        for r, idx in enumerate(batches):
            check_stop(stop)
            h, y = data.x[idx], data.y[idx]
            for k, stage in enumerate(stages):
                t0 = time.perf_counter()
                stage.module.train()
                stage.module(h.detach().requires_grad_(k > 0))
                t1 = time.perf_counter()
                result = stage.step(h, y)
                t2 = time.perf_counter()
                predict = learn = 0.0
                if stage.interface is not None:
                    context = (label_context(y, data.n_classes) if config.method == "cdni"
                               else None)
                    with torch.no_grad():
                        t3 = time.perf_counter()
                        stage.interface.synthesizer(result.h_out, context)
                        predict = time.perf_counter() - t3
                    t4 = time.perf_counter()
                    stage.learn_synthesizer(torch.zeros_like(result.h_out))
                    learn = time.perf_counter() - t4
                if r >= 2:                              # skip warm-up
                    cost["forward"][k].append(t1 - t0)
                    cost["backward"][k].append(max(0.0, (t2 - t1) - (t1 - t0) - predict))
                    cost["synth"][k].append(predict + learn)
                h = result.h_out if result.h_out is not None else h
    finally:
        torch.set_num_threads(old)
    return {key: [statistics.median(v) for v in per_stage] for key, per_stage in cost.items()}


def predict(costs: dict[str, list[float]], delay: float, minibatches: int,
            batch_size: int) -> dict[str, Any]:
    """Notebook 00's simulator on measured costs.

    Returns examples/s of update-decoupled SG on K workers (with the measured
    message ``delay``), of backprop on K workers (same delay), and of backprop
    with no messages at all (the same costs run one after the other: one
    process, one thread), and the speed-up of SG over the last one.
    """
    n = min(minibatches, 2000)
    c = timeline.Costs(costs["forward"], costs["backward"], costs["synth"], delay)
    sg = timeline.simulate(c, "decoupled", n)
    bp = timeline.simulate(c, "backprop", n)
    one = timeline.simulate(timeline.Costs(costs["forward"], costs["backward"], 0.0, 0.0),
                            "backprop", n)
    return {"sg_examples_per_s": sg.throughput * batch_size,
            "backprop_k_examples_per_s": bp.throughput * batch_size,
            "backprop_1proc_examples_per_s": one.throughput * batch_size,
            "speedup": sg.throughput / one.throughput,
            "idle_sg": sg.idle_fraction, "idle_backprop": bp.idle_fraction}


def time_to_accuracy(evals: Sequence[Sequence[float]], target: float) -> float:
    """Seconds of training until the test accuracy first reaches ``target`` (inf if never)."""
    for _, seconds, acc in evals:
        if acc >= target:
            return float(seconds)
    return math.inf


def steps_to_accuracy(evals: Sequence[Sequence[float]], target: float) -> float:
    """Training steps until the test accuracy first reaches ``target`` (inf if never)."""
    for step, _, acc in evals:
        if acc >= target:
            return float(step)
    return math.inf


VARIANTS = ("backprop", "backprop_1thread", "dni_1proc", "pipelined")


@dataclass(frozen=True)
class BenchSettings(Settings):
    """The benchmark: one MLP per width in ``widths``, split over ``workers`` processes.

    Each method runs ``repeats`` times, interleaved; ``eval_every`` steps the
    test set is scored, for the time to ``target_accuracy``. ``cuda=None``
    adds GPU rows when a GPU is present.
    """

    widths: tuple[int, ...] = (64, 256, 1024)
    workers: int = 2
    depth: int = 3
    steps: int = 300
    batch_size: int = 64
    repeats: int = 3
    eval_every: int = 25
    target_accuracy: float = 40.0
    seed: int = 0
    cuda: bool | None = None

    def validate(self) -> None:
        if not isinstance(self.widths, tuple) or not self.widths:
            raise ValueError(f"widths must be a non-empty tuple of model widths, got {self.widths!r}")
        for w in self.widths:
            check_int("widths[]", w, 1, 8192)
        check_int("workers", self.workers, 2)
        check_int("depth", self.depth, 1, 64)
        check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 2)
        check_int("repeats", self.repeats, 1, 20)
        check_int("eval_every", self.eval_every, 1)
        check_float("target_accuracy", self.target_accuracy, 0.0, 100.0)
        check_int("seed", self.seed, 0)
        if self.cuda is not None and not isinstance(self.cuda, bool):
            raise ValueError(f"cuda must be True, False or None, got {self.cuda!r}")


def _in_background(call: Callable[[], Any], stop: threading.Event, done: int, total: int,
                   what: str) -> Generator[Progress, None, Any]:
    """Run ``call`` on a helper thread, yielding a heartbeat every 0.1 s; return its value.

    Closing the generator (a panel's Stop) sets ``stop``, which the training
    loops check every step, and waits for the helper to end: nothing is left
    running, and the workers of a parallel run are terminated.
    """
    box: dict[str, Any] = {}
    threads = torch.get_num_threads()

    def target() -> None:
        torch.set_num_threads(threads)
        try:
            box["value"] = call()
        except BaseException as exc:   # handed to the caller below
            box["error"] = exc

    helper = threading.Thread(target=target, name="dni-lite-bench", daemon=True)
    helper.start()
    try:
        while helper.is_alive():
            helper.join(0.1)
            yield Progress(done, total, what)
    finally:
        if helper.is_alive():
            stop.set()
            helper.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def benchmark(settings: BenchSettings | None = None, **overrides) -> Iterator[dict[str, float]]:
    """The benchmark as an experiment: one metric row per model width, then the full result.

    Between rows it yields ``runner.Progress`` heartbeats several times a
    second; closing it stops the run in progress within a training step.

    For each width, ``repeats`` rounds each run, back to back (interleaved):
    backprop with all cores, backprop with one thread, DNI in one process
    (all cores) and the pipelined DNI run on ``workers`` processes (one
    thread each). Rows hold medians; the generator returns the dict that
    ``run_benchmark`` writes.
    """
    s = BenchSettings.build(settings, **overrides)
    widths, workers, depth, steps = list(s.widths), s.workers, s.depth, s.steps
    batch_size, repeats, eval_every = s.batch_size, s.repeats, s.eval_every
    target_accuracy, seed = s.target_accuracy, s.seed
    cuda = torch.cuda.is_available() if s.cuda is None else s.cuda
    if cuda and not torch.cuda.is_available():
        raise ValueError("cuda=True was asked for but no CUDA GPU is available")
    configs = {w: ParallelConfig(workers=workers, depth=depth, width=w, steps=steps,
                                 batch_size=batch_size, eval_every=eval_every, seed=seed,
                                 timeout_s=300.0).validate() for w in widths}
    data = load_data(seed)
    cores = os.cpu_count() or 1
    stop = threading.Event()
    runners = {"backprop": lambda c: train_backprop(c, data, threads=cores, stop=stop),
               "backprop_1thread": lambda c: train_backprop(c, data, threads=1, stop=stop),
               "dni_1proc": lambda c: train_in_process(c, data, threads=cores, stop=stop),
               "pipelined": lambda c: train_parallel(c, data=data, stop=stop)}
    if cuda:
        runners["backprop_cuda"] = lambda c: train_backprop(c, data, device="cuda", stop=stop)
        runners["dni_1proc_cuda"] = lambda c: train_in_process(c, data, device="cuda", stop=stop)
    rows, all_runs = [], {}
    total = len(widths) * repeats * len(runners)
    done = 0
    for w in widths:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in runners}
        for r in range(repeats):
            names = list(runners)
            names = names[r % len(names):] + names[:r % len(names)]   # rotate the order
            for name in names:
                what = f"width {w}: {name.replace('_', ' ')}, repeat {r + 1} of {repeats}"
                run = yield from _in_background(lambda: runners[name](configs[w]), stop,
                                                done, total, what)
                runs[name].append(run)
                done += 1
        med = {name: _median_field(runs[name], "examples_per_s") for name in runners}
        costs = yield from _in_background(lambda: stage_costs(configs[w], data, stop=stop), stop,
                                          done, total, f"width {w}: measuring per-stage costs")
        delay = statistics.median(p["delay_s"] for p in runs["pipelined"])
        sim = predict(costs, delay, steps, batch_size)
        row = {"width": w, "workers": workers, "depth": depth, "device": device_name("cpu"),
               **{f"{name}_examples_per_s": med[name] for name in VARIANTS},
               "speedup": med["pipelined"] / med["backprop"],
               "speedup_vs_1thread": med["pipelined"] / med["backprop_1thread"],
               "dni_step_cost": med["backprop"] / med["dni_1proc"],
               "predicted_speedup": sim["speedup"],
               "predicted_sg_examples_per_s": sim["sg_examples_per_s"],
               "predicted_backprop_1proc_examples_per_s": sim["backprop_1proc_examples_per_s"],
               "time_to_target_backprop_s": _median_tta(runs["backprop"], target_accuracy),
               "time_to_target_pipelined_s": _median_tta(runs["pipelined"], target_accuracy),
               **{f"accuracy_{name}": _median_field(runs[name], "test_accuracy")
                  for name in VARIANTS},
               "wait_fraction": [statistics.median(p["wait_s"][k] / p["worker_elapsed_s"][k]
                                                   for p in runs["pipelined"])
                                 for k in range(workers)],
               "costs_s": costs, "delay_s": delay,
               "threads": {"backprop": cores, "backprop_1thread": 1, "dni_1proc": cores,
                           "pipelined": 1}}
        rows.append(row)
        if cuda:
            bp = _median_field(runs["backprop_cuda"], "examples_per_s")
            dn = _median_field(runs["dni_1proc_cuda"], "examples_per_s")
            rows.append({"width": w, "workers": 1, "depth": depth,
                         "device": device_name("cuda"), "backprop_examples_per_s": bp,
                         "dni_1proc_examples_per_s": dn, "dni_step_cost": bp / dn,
                         "time_to_target_backprop_s":
                             _median_tta(runs["backprop_cuda"], target_accuracy)})
        all_runs.update({f"{name}/{w}": [summary(x) for x in xs] for name, xs in runs.items()})
        yield {"width": w, "speedup": row["speedup"],
               "speedup_vs_1thread": row["speedup_vs_1thread"],
               "predicted_speedup": row["predicted_speedup"],
               "dni_step_cost": row["dni_step_cost"],
               **{f"{name}_examples_per_s": row[f"{name}_examples_per_s"] for name in VARIANTS},
               "predicted_sg_examples_per_s": row["predicted_sg_examples_per_s"]}
    return {"settings": {"widths": widths, "workers": workers, "depth": depth, "steps": steps,
                         "batch_size": batch_size, "repeats": repeats, "eval_every": eval_every,
                         "target_accuracy": target_accuracy, "seed": seed, "cpu_count": cores,
                         "torch": torch.__version__},
            "rows": rows, "runs": all_runs}


def run_benchmark(settings: BenchSettings | None = None,
                  out: str | os.PathLike | None = DEFAULT_OUT, log: Any = print,
                  **overrides: Any) -> dict[str, Any]:
    """Run ``benchmark`` to the end; write its result to ``out`` as JSON (unless None)."""
    run = benchmark(settings, **overrides)
    started = time.perf_counter()
    while True:
        try:
            row = next(run)
        except StopIteration as done:
            result = done.value
            break
        if isinstance(row, Progress):
            continue
        log(f"width {row['width']} done ({time.perf_counter() - started:.0f} s)")
    if out is not None:
        save_results(result, out)
    return result


def save_results(result: dict[str, Any], path: str | os.PathLike = DEFAULT_OUT) -> Path:
    """Write a benchmark result as JSON (the file notebook 07 and ``load_results`` read)."""
    if not isinstance(result, dict) or "rows" not in result:
        raise ValueError("result must be the dict that benchmark() returns")
    path = Path(path)
    path.write_text(json.dumps(result, indent=1))
    return path


def _median_field(results: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in results)


def _median_tta(results: list[dict[str, Any]], target: float) -> float:
    return statistics.median(time_to_accuracy(r["evals"], target) for r in results)


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """A run's figures for a results file (without its weights and trace), and the ablation it
    ran under (``"none"`` for the method itself). The per-step losses stay: notebook 07's
    exactness check compares them."""
    keep = ("mode", "device", "elapsed_s", "examples_per_s", "test_accuracy", "evals", "losses",
            "wait_s", "busy_s", "worker_elapsed_s", "delay_s", "threads", "micro_batches",
            "interfaces")
    return {**{k: result[k] for k in keep if k in result}, "ablation": result["config"]["ablation"]}


def load_results(path: str | os.PathLike = DEFAULT_OUT) -> dict[str, Any]:
    """Read a benchmark file written by ``run_benchmark``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run `python -m dni_lite.parallel.bench` "
                                "first")
    return json.loads(path.read_text())


def format_table(result: dict[str, Any]) -> str:
    """The table of ratios: one line per (width, device)."""
    s = result["settings"]
    lines = [f"MLP depth {s['depth']}, batch {s['batch_size']}, {s['steps']} steps, "
             f"medians of {s['repeats']} interleaved repeats; target accuracy "
             f"{s['target_accuracy']:.0f}%",
             f"{'width':>6} {'device':<18} {'bp ex/s':>8} {'bp1 ex/s':>9} {'DNI1 ex/s':>10} "
             f"{'pipe ex/s':>10} {'speed-up':>9} {'vs bp1':>7} {'predicted':>10} "
             f"{'DNI cost':>9} {'t>tgt bp':>9} {'t>tgt pipe':>11}"]
    for row in result["rows"]:
        def f(key: str, fmt: str) -> str:
            v = row.get(key)
            if v is None:
                return "-"
            if isinstance(v, float) and math.isinf(v):
                return "never"
            return format(v, fmt)
        lines.append(f"{row['width']:>6} {row['device'][:18]:<18} "
                     f"{f('backprop_examples_per_s', '.0f'):>8} "
                     f"{f('backprop_1thread_examples_per_s', '.0f'):>9} "
                     f"{f('dni_1proc_examples_per_s', '.0f'):>10} "
                     f"{f('pipelined_examples_per_s', '.0f'):>10} {f('speedup', '.2f'):>9} "
                     f"{f('speedup_vs_1thread', '.2f'):>7} {f('predicted_speedup', '.2f'):>10} "
                     f"{f('dni_step_cost', '.2f'):>9} {f('time_to_target_backprop_s', '.2f'):>9} "
                     f"{f('time_to_target_pipelined_s', '.2f'):>11}")
    lines.append("bp = backprop, one process, all cores; bp1 = the same on one thread; DNI1 = the "
                 "pipelined schedule run in one process (all cores); pipe = DNI on K worker "
                 "processes, one thread each.\nspeed-up = pipe / bp; vs bp1 = pipe / bp1; "
                 "predicted = notebook 00's simulator: SG on K workers (measured message delay) "
                 "over the same per-module costs run in one thread; DNI cost = bp / DNI1; "
                 "t>tgt = seconds of training to the target test accuracy.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target-accuracy", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--no-cuda", action="store_true", help="ignore a GPU if present")
    args = parser.parse_args(argv)
    settings = BenchSettings(widths=tuple(args.widths), workers=args.workers, depth=args.depth,
                             steps=args.steps, batch_size=args.batch_size, repeats=args.repeats,
                             target_accuracy=args.target_accuracy, seed=args.seed,
                             cuda=False if args.no_cuda else None)
    result = run_benchmark(settings, out=args.out)
    print(format_table(result))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
