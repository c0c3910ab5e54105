"""The machine's ceiling for K workers: K copies of one-worker backprop, all at once.

A K-worker pipeline (DNI, GPipe, 1F1B) gives each worker a share of every step.
At best each share runs as fast as one-worker backprop runs a whole step while
the other K - 1 cores are just as busy. So no K-worker scheme of the same model
can beat the throughput of K one-thread backprop processes that train
side by side: with an idle core per worker that is K times one-worker backprop;
where the workers share cores, caches or memory bandwidth it is less, and
``train_copies`` measures how much less.

``train_copies(config)`` starts ``config.workers`` processes
(``python -m dni_lite.parallel.ceiling``); each trains the whole model with
plain backprop on one thread, all starting at a barrier. Their combined
throughput counts every copy's examples over the slowest copy's time, so a copy
that finished early and left the machine to the others does not inflate it.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any

from ..data.datasets import Dataset
from .config import ParallelConfig, check_configs
from .devices import device_name
from .launch import run_workers
from .reference import train_backprop
from .worker import run_worker, worker_inputs, worker_parser


def train_copies(config: ParallelConfig, data: Dataset | None = None,
                 stop: threading.Event | None = None) -> dict[str, Any]:
    """Train ``config.workers`` copies of one-worker backprop at once; return their throughput.

    ``examples_per_s`` is all copies' examples over the slowest copy's training
    seconds; ``per_copy`` is each copy's own examples per second. Setting
    ``stop`` stops the processes and raises ``runner.Stopped``.
    """
    if not isinstance(config, ParallelConfig):
        raise ValueError(f"config must be a ParallelConfig, got {type(config).__name__}")
    (config,) = check_configs(dataclasses.replace(config, eval_every=0, threads=1))
    per_rank = run_workers("dni_lite.parallel.ceiling", [config], config.workers, data, stop)
    copies = [per_rank[r][0] for r in range(config.workers)]
    slowest = max(c["elapsed_s"] for c in copies)
    return {"mode": "copies", "copies": config.workers, "elapsed_s": slowest,
            "examples_per_s": config.workers * config.steps * config.batch_size / slowest,
            "per_copy": [c["examples_per_s"] for c in copies],
            "test_accuracy": copies[-1]["test_accuracy"],
            "threads": [c["threads"] for c in copies], "device": device_name("cpu")}


def _copy_loop(config: ParallelConfig, data: Dataset, rank: int, world: int, dist: Any
               ) -> dict[str, Any]:
    """One copy: wait for all, then train the whole model with backprop on this process's thread."""
    dist.barrier()
    run = train_backprop(config, data, threads=config.threads)
    return {"rank": rank, "elapsed_s": run["elapsed_s"], "examples_per_s": run["examples_per_s"],
            "test_accuracy": run["test_accuracy"], "threads": config.threads}


def main(argv: list[str] | None = None) -> None:
    args = worker_parser("One copy of one-worker backprop, run beside the others.").parse_args(argv)
    configs, data = worker_inputs(args)
    run_worker(configs, args.out, data, loop=_copy_loop)


if __name__ == "__main__":
    main()
