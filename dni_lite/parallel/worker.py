"""One worker of a pipelined DNI run: its stage, talking to its neighbours through torch.distributed.

Worker k at minibatch t receives h_{k-1}(t) (worker 0 reads x), runs its
stage forward and sends h_k(t) up (non-blocking); it regresses its
synthesizer on the target of step t - ``target_delay`` from worker k+1, then
updates its stage from the fresh synthesizer's prediction and sends the
bootstrapped target for worker k-1 down. (With ``target_delay=0`` it must
predict before it can learn, so it learns last.) Every receive is posted a step
ahead (the first activation before training starts, the next as soon as this one
arrived, a target as soon as its activation went up), so a message lands while its
receiver computes; one fetched only when asked for can keep a busy worker waiting
although it was sent long before.
Start K of them with ``train_parallel`` or with
``torchrun --nproc-per-node K -m dni_lite.parallel --config cfg.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections import deque
from datetime import timedelta
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from ..data.datasets import Dataset
from ..diagnostics import percent_correct
from .config import ParallelConfig, check_configs
from .stage import batch_indices, build_stages, load_data


_ACT, _TARGET, _EVAL = 0, 1, 2


def _tag(step: int, kind: int) -> int:
    return 3 * step + kind


Loop = Callable[[ParallelConfig, Dataset, int, int, Any], dict[str, Any]]


def run_worker(configs: ParallelConfig | Sequence[ParallelConfig], out_dir: str | None = None,
               data: Dataset | None = None, loop: Loop | None = None) -> list[dict[str, Any]]:
    """Run this process's stage for each config in turn; rank and world size come from the env.

    Works under ``train_parallel`` and under ``torchrun`` (both set RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Writes ``rank{k}.pt`` to ``out_dir``.
    ``loop(config, data, rank, world, dist)`` trains one config (default: the
    DNI worker's loop; pipeline backprop passes its own).
    """
    loop = loop or _worker_loop
    import torch.distributed as dist

    configs = check_configs(configs)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if world != configs[0].workers:
        raise ValueError(f"this model is split into workers={configs[0].workers} stages but "
                         f"{world} worker processes were started; start exactly "
                         f"{configs[0].workers} (torchrun --nproc-per-node {configs[0].workers})")
    data = data if data is not None else load_data(configs[0].seed)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=timedelta(seconds=max(c.timeout_s for c in configs)))
    try:
        results = []
        for config in configs:
            torch.set_num_threads(config.threads)
            results.append(loop(config, data, rank, world, dist))
    finally:
        dist.destroy_process_group()
    if out_dir is not None:
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    return results


def _worker_loop(config: ParallelConfig, data: Dataset, rank: int, world: int, dist: Any
                 ) -> dict[str, Any]:
    stage = build_stages(config, data)[rank]
    first, last, D = rank == 0, rank == world - 1, config.target_delay
    batches = batch_indices(len(data.y), config.batch_size, config.steps, config.seed)
    shape = (len(batches[0]), config.width)
    sends: deque = deque()
    trace: dict[str, list] = {"activations": [], "targets": []}
    losses, evals = [], []
    wait_s = eval_s = 0.0

    posted: dict[int, tuple[Tensor, Any]] = {}

    def post(src: int, tag: int) -> None:
        """Start receiving a message now, so that it lands while this worker computes."""
        buf = torch.empty(shape)
        posted[tag] = (buf, dist.irecv(buf, src=src, tag=tag))

    def recv(tag: int) -> Tensor:
        """Wait for a message posted earlier."""
        nonlocal wait_s
        t0 = time.perf_counter()
        buf, work = posted.pop(tag)
        work.wait()
        wait_s += time.perf_counter() - t0
        return buf

    def learn(s: int) -> None:
        target = recv(_tag(s, _TARGET))
        if s < config.trace_steps:
            trace["targets"].append((s, target.clone()))
        stage.learn_synthesizer(target)

    delay_s = _ping(dist, rank, shape)
    if not first:
        post(rank - 1, _tag(0, _ACT))
    dist.barrier()
    start = time.perf_counter()
    for t, idx in enumerate(batches):
        if t == config.fail_step and rank == config.fail_rank:
            raise RuntimeError(f"injected failure on worker {rank} at step {t}")
        y = data.y[idx]
        if first:
            h_in = data.x[idx]
        else:
            h_in = recv(_tag(t, _ACT))
            if t + 1 < config.steps:
                post(rank - 1, _tag(t + 1, _ACT))
            if t < config.trace_steps:
                trace["activations"].append((t, h_in.clone()))
        h_out = stage.forward(h_in, y)
        if not last:
            sends.append(dist.isend(h_out, rank + 1, tag=_tag(t, _ACT)))
            post(rank + 1, _tag(t, _TARGET))
            if D > 0 and t - D >= 0:     # learn what is due before predicting again
                learn(t - D)
        result = stage.update()
        if not first:
            sends.append(dist.isend(result.grad_in, rank - 1, tag=_tag(t, _TARGET)))
        if not last and D == 0:
            learn(t)
        losses.append(result.loss)
        if config.eval_every and (t + 1) % config.eval_every == 0:
            e0 = time.perf_counter()
            acc = evaluate_pipelined(stage.infer, data, config, rank, world, t, dist)
            eval_s += time.perf_counter() - e0
            evals.append((t + 1, time.perf_counter() - start - eval_s, acc))
        while len(sends) > 4:      # a few sends in flight; each keeps its buffer alive
            sends.popleft().wait()
    if not last:
        for s in range(max(0, config.steps - D), config.steps):
            learn(s)
    while sends:
        sends.popleft().wait()
    elapsed = time.perf_counter() - start - eval_s
    final = evaluate_pipelined(stage.infer, data, config, rank, world, config.steps, dist)
    return {"rank": rank, "elapsed_s": elapsed, "wait_s": wait_s, "busy_s": stage.busy_s,
            "eval_s": eval_s, "delay_s": delay_s, "losses": losses, "evals": evals,
            "test_accuracy": final, "trace": trace, "threads": torch.get_num_threads(),
            "state": stage.state()}


def _ping(dist: Any, rank: int, shape: tuple[int, ...], repeats: int = 20) -> float:
    """One-way time of an activation-sized message between workers 0 and 1 (median)."""
    buf, times = torch.zeros(shape), []
    for _ in range(repeats):
        t0 = time.perf_counter()
        if rank == 0:
            dist.send(buf, 1, tag=1 << 30)
            dist.recv(buf, 1, tag=1 << 30)
        elif rank == 1:
            dist.recv(buf, 0, tag=1 << 30)
            dist.send(buf, 0, tag=1 << 30)
        times.append((time.perf_counter() - t0) / 2)
    return sorted(times)[len(times) // 2] if rank == 0 else float("nan")


def evaluate_pipelined(infer: Callable[[Tensor], Tensor], data: Dataset, config: ParallelConfig,
                       rank: int, world: int, step: int, dist: Any) -> float:
    """Forward the test set through the pipeline (``infer``: this rank's stage in eval mode);
    the last worker scores it. All workers then meet at a barrier, so that no worker's training
    clock runs while another still evaluates (a lower worker would otherwise count as training
    its wait for the upper one's next target, which comes only once that one has scored)."""
    tag = _tag(step, _EVAL)
    if rank == 0:
        h = data.x_test
    else:
        h = torch.empty(len(data.y_test), config.width)
        dist.recv(h, src=rank - 1, tag=tag)
    h = infer(h)
    if rank < world - 1:
        dist.send(h.contiguous(), rank + 1, tag=tag)
        accuracy = float("nan")
    else:
        accuracy = percent_correct(h, data.y_test)
    dist.barrier()
    return accuracy


def _exit_with_parent() -> None:
    """Die if the launching process disappears, so no worker is ever orphaned."""
    parent = int(os.environ.get("DNI_LITE_PARENT_PID", "0"))
    if not parent:
        return

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(3)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def worker_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every worker process takes (what ``launch.run_workers`` passes)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="JSON file with ParallelConfig fields")
    parser.add_argument("--out", default=None, help="folder for rank{k}.pt results")
    parser.add_argument("--data", default=None, help="saved Dataset tensors (default: MNIST-1D)")
    return parser


def worker_inputs(args: argparse.Namespace) -> tuple[list[ParallelConfig], Dataset | None]:
    """The configs and data named by a worker's arguments; starts the orphan watch."""
    fields: Any = {}
    if args.config:
        with open(args.config) as f:
            fields = json.load(f)
    configs = [ParallelConfig(**c) for c in (fields if isinstance(fields, list) else [fields])]
    _exit_with_parent()
    data = Dataset(**torch.load(args.data)) if args.data else None
    return configs, data


def main(argv: list[str] | None = None) -> None:
    args = worker_parser("One worker of a pipelined DNI run "
                         "(start with torchrun --nproc-per-node K).").parse_args(argv)
    configs, data = worker_inputs(args)
    for result in run_worker(configs, args.out, data):
        if result["rank"] == int(os.environ["WORLD_SIZE"]) - 1:
            print(f"test accuracy {result['test_accuracy']:.2f}%, {result['elapsed_s']:.2f} s "
                  f"of training on the last worker")
