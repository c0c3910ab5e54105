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
target. Use a config with ``batchnorm=False``: BatchNorm's statistics would
be those of one micro-batch.
"""
from __future__ import annotations

import dataclasses
import functools
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
    check_choice("schedule", schedule, SCHEDULES)
    for c in configs:
        check_micro_batches(c, micro_batches)
    per_rank = run_workers("dni_lite.parallel.pipeline_backprop", configs, configs[0].workers,
                           data, stop, ["--schedule", schedule,
                                        "--micro-batches", str(micro_batches)])
    merged = []
    for i, c in enumerate(configs):
        results = [per_rank[r][i] for r in range(c.workers)]
        elapsed = max(r["elapsed_s"] for r in results)
        last = results[-1]
        merged.append({"mode": schedule, "micro_batches": micro_batches,
                       "config": dataclasses.asdict(c), "elapsed_s": elapsed,
                       "examples_per_s": c.steps * c.batch_size / elapsed,
                       "test_accuracy": last["test_accuracy"], "evals": last["evals"],
                       "losses": last["losses"], "worker_elapsed_s":
                           [r["elapsed_s"] for r in results],
                       "threads": [r["threads"] for r in results],
                       "device": device_name("cpu")})
    return merged[0] if single else merged


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
    parser.add_argument("--schedule", choices=SCHEDULES, default="gpipe")
    parser.add_argument("--micro-batches", type=int, default=4)
    args = parser.parse_args(argv)
    configs, data = worker_inputs(args)
    run_worker(configs, args.out, data, loop=functools.partial(
        _worker_loop, schedule=args.schedule, micro_batches=args.micro_batches))


if __name__ == "__main__":
    main()
