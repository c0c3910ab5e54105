"""The fair baseline: pipeline-parallel backprop (GPipe, 1F1B) on the same K workers.

Decoupling is not the only way to keep K workers busy. Pipeline-parallel
backprop cuts each minibatch into M micro-batches that follow each other
through the stages, with exact gradients and one update per minibatch (a
flush). PyTorch ships it as ``torch.distributed.pipelining``; this module
runs its ``ScheduleGPipe`` and ``Schedule1F1B`` on the same MLP, stages,
data, batches and optimiser as the DNI pipeline, one process per stage,
gloo messages, one thread per worker.

``train_pipeline_backprop(config, schedule, micro_batches)`` starts the K
processes (``python -m dni_lite.parallel.pipeline_backprop``) and returns
the same fields as ``train_parallel``: examples per second, test accuracy,
and ``evals`` (step, training seconds, test accuracy) for the time to a
target; ``sweep_pipeline_backprop`` runs several schedules and micro-batch
counts in one start-up of the processes. Use a config with
``batchnorm=False``: BatchNorm's statistics would be those of one micro-batch.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.datasets import Dataset
from ..experiments.mlp import MLP
from ..runner import seeded
from ..validate import check_choice, check_int
from .config import ParallelConfig, check_configs
from .devices import device_name
from .launch import run_workers
from .stage import adam, batch_indices
from .worker import evaluate_pipelined, run_worker, worker_inputs, worker_parser

SCHEDULES = ("gpipe", "1f1b")


def check_micro_batches(config: ParallelConfig, micro_batches: int) -> int:
    """M must split the minibatch into equal micro-batches."""
    m = check_int("micro_batches", micro_batches, 1, config.batch_size)
    if config.batch_size % m:
        raise ValueError(f"micro_batches must divide batch_size={config.batch_size} into equal "
                         f"micro-batches, got {m}")
    return m


def train_pipeline_backprop(config: ParallelConfig | Sequence[ParallelConfig],
                            schedule: str = "gpipe", micro_batches: int = 4,
                            data: Dataset | None = None, stop: threading.Event | None = None
                            ) -> dict[str, Any] | list[dict[str, Any]]:
    """Train with ``torch.distributed.pipelining`` on ``config.workers`` local processes.

    ``schedule``: ``"gpipe"`` or ``"1f1b"``; ``micro_batches``: M. A list of
    configs runs one after the other in the same processes. Setting ``stop``
    stops the workers and raises ``runner.Stopped``.
    """
    single = isinstance(config, ParallelConfig)
    configs = check_configs(config)
    results = _launch(configs, [(schedule, micro_batches)] * len(configs), data, stop)
    return results[0] if single else results


def sweep_pipeline_backprop(config: ParallelConfig, plan: Sequence[tuple[str, int]],
                            data: Dataset | None = None, stop: threading.Event | None = None
                            ) -> list[dict[str, Any]]:
    """Train ``config`` once per ``(schedule, micro_batches)`` in ``plan``, in one start-up.

    The K processes start once and run the plan in order: a sweep of short runs
    would otherwise spend most of its time starting Python and torch. Returns
    one result per entry, as ``train_pipeline_backprop`` would.
    """
    if isinstance(plan, (str, bytes)) or not plan:
        raise ValueError(f"plan must be a non-empty list of (schedule, micro_batches) pairs, "
                         f"got {plan!r}")
    configs = check_configs([config] * len(plan))
    return _launch(configs, list(plan), data, stop)


def _launch(configs: list[ParallelConfig], plan: list[tuple[str, int]], data: Dataset | None,
            stop: threading.Event | None) -> list[dict[str, Any]]:
    """Check the plan (a schedule and M per config), run it on K processes, merge the ranks."""
    for c, (schedule, m) in zip(configs, plan):
        check_choice("schedule", schedule, SCHEDULES)
        check_micro_batches(c, m)
    per_rank = run_workers("dni_lite.parallel.pipeline_backprop", configs, configs[0].workers,
                           data, stop, ["--plan", ",".join(f"{s}:{m}" for s, m in plan)])
    merged = []
    for i, (c, (schedule, m)) in enumerate(zip(configs, plan)):
        results = [per_rank[r][i] for r in range(c.workers)]
        elapsed = max(r["elapsed_s"] for r in results)
        last = results[-1]
        merged.append({"mode": schedule, "micro_batches": m,
                       "config": dataclasses.asdict(c), "elapsed_s": elapsed,
                       "examples_per_s": c.steps * c.batch_size / elapsed,
                       "test_accuracy": last["test_accuracy"], "evals": last["evals"],
                       "losses": last["losses"], "worker_elapsed_s":
                           [r["elapsed_s"] for r in results],
                       "threads": [r["threads"] for r in results],
                       "device": device_name("cpu")})
    return merged


def stage_module(config: ParallelConfig, data: Dataset, rank: int) -> nn.Module:
    """This rank's consecutive layers of the seeded MLP (the same weights as the DNI run)."""
    with seeded(config.seed):
        model = MLP(data.in_dim, data.n_classes, config.depth, config.width,
                    batchnorm=config.batchnorm)
    a, b = config.stage_layers()[rank]
    return nn.Sequential(*[model.layers[i] for i in range(a, b)])


def _worker_loop(config: ParallelConfig, data: Dataset, rank: int, world: int, dist: Any,
                 schedule: str = "gpipe", micro_batches: int = 4) -> dict[str, Any]:
    from torch.distributed.pipelining import PipelineStage, Schedule1F1B, ScheduleGPipe

    module = stage_module(config, data, rank)
    stage = PipelineStage(module, rank, world, torch.device("cpu"))
    kind = ScheduleGPipe if schedule == "gpipe" else Schedule1F1B
    pipe = kind(stage, micro_batches, loss_fn=lambda out, y: F.cross_entropy(out, y))
    opt = adam(module.parameters(), config.lr)
    first, last = rank == 0, rank == world - 1

    @torch.no_grad()
    def infer(h: torch.Tensor) -> torch.Tensor:
        module.eval()
        return module(h)

    batches = batch_indices(len(data.y), config.batch_size, config.steps, config.seed)
    losses: list[float] = []
    evals: list[tuple[int, float, float]] = []
    eval_s = 0.0
    dist.barrier()
    start = time.perf_counter()
    for t, idx in enumerate(batches):
        module.train()
        opt.zero_grad(set_to_none=True)
        if first:
            pipe.step(data.x[idx])
        elif last:
            micro: list[torch.Tensor] = []
            pipe.step(target=data.y[idx], losses=micro)
            losses.append(float(torch.stack(micro).mean()))
        else:
            pipe.step()
        opt.step()
        if config.eval_every and (t + 1) % config.eval_every == 0:
            e0 = time.perf_counter()
            acc = evaluate_pipelined(infer, data, config, rank, world, t, dist)
            eval_s += time.perf_counter() - e0
            evals.append((t + 1, time.perf_counter() - start - eval_s, acc))
    elapsed = time.perf_counter() - start - eval_s
    final = evaluate_pipelined(infer, data, config, rank, world, config.steps, dist)
    return {"rank": rank, "elapsed_s": elapsed, "losses": losses, "evals": evals,
            "test_accuracy": final, "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> None:
    parser = worker_parser("One worker of pipeline-parallel backprop.")
    parser.add_argument("--plan", default="gpipe:4",
                        help="schedule:micro-batches per config, comma-separated (e.g. gpipe:2,1f1b:4)")
    args = parser.parse_args(argv)
    configs, data = worker_inputs(args)
    plan = [(entry.split(":")[0], int(entry.split(":")[1])) for entry in args.plan.split(",")]
    if len(plan) != len(configs):
        raise ValueError(f"--plan has {len(plan)} entries for {len(configs)} configs")
    runs = iter(plan)

    def loop(config: ParallelConfig, data: Dataset, rank: int, world: int, dist: Any
             ) -> dict[str, Any]:
        schedule, micro_batches = next(runs)     # run_worker trains the configs in order
        return _worker_loop(config, data, rank, world, dist, schedule, micro_batches)

    run_worker(configs, args.out, data, loop=loop)


if __name__ == "__main__":
    main()
