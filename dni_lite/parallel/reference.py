"""The parallel run's references, in one process.

``train_in_process`` runs exactly the per-worker steps of the pipelined
schedule, one after the other: what the parallel run must reproduce, and the
single-process cost of DNI. ``train_backprop`` is the baseline: the same
model, data and batches, one process, ordinary backprop.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.datasets import Dataset
from ..diagnostics import accuracy
from ..experiments.mlp import MLP
from ..runner import check_stop, seeded
from ..validate import check_int
from .config import ParallelConfig
from .devices import check_device, clock, device_name, to_device
from .stage import adam, batch_indices, build_stages, evaluate, load_data


def train_in_process(config: ParallelConfig, data: Dataset | None = None,
                     threads: int | None = None, device: str = "cpu",
                     stop: threading.Event | None = None) -> dict[str, Any]:
    """Run the pipelined schedule sequentially in this process (``threads``: default config's).

    Stage k at minibatch t does exactly what worker k does: ``forward`` on t,
    ``learn_synthesizer`` with the target of t - ``target_delay``, then
    ``update`` (with ``target_delay=0``: ``learn_synthesizer`` last). The
    result has the same fields as ``train_parallel``'s. Setting ``stop``
    raises ``runner.Stopped`` before the next step.
    """
    config = dataclasses.replace(config).validate()
    data = data if data is not None else load_data(config.seed)
    threads = check_int("threads", threads if threads is not None else config.threads, 1)
    device = check_device(device)
    data = to_device(data, device)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        stages = build_stages(config, data)
        for stage in stages:
            stage.module.to(device)
            if stage.interface is not None:
                stage.interface.to(device)
        K, D = len(stages), config.target_delay
        batches = batch_indices(len(data.y), config.batch_size, config.steps, config.seed)
        targets: list[dict[int, Tensor]] = [dict() for _ in range(K)]
        trace: list[dict[str, list]] = [{"activations": [], "targets": []} for _ in range(K)]
        losses, evals, eval_s = [], [], 0.0

        def learn(k: int, s: int) -> None:
            target = targets[k].pop(s)
            if s < config.trace_steps:
                trace[k]["targets"].append((s, target.clone()))
            stages[k].learn_synthesizer(target)

        start = clock(device)
        for t, idx in enumerate(batches):
            check_stop(stop)
            idx = idx.to(device)
            h, y = data.x[idx], data.y[idx]
            for k, stage in enumerate(stages):
                if k > 0 and t < config.trace_steps:
                    trace[k]["activations"].append((t, h.clone()))
                h_out = stage.forward(h, y)
                if k < K - 1 and D > 0 and t - D >= 0:
                    learn(k, t - D)
                result = stage.update()
                if k > 0:
                    targets[k - 1][t] = result.grad_in
                h = h_out
            losses.append(result.loss)
            if D == 0:
                for k in range(K - 1):
                    learn(k, t)
            if config.eval_every and (t + 1) % config.eval_every == 0:
                e0 = clock(device)
                acc = evaluate(stages, data)
                eval_s += clock(device) - e0
                evals.append((t + 1, time.perf_counter() - start - eval_s, acc))
        for s in range(max(0, config.steps - D), config.steps):   # the last targets
            for k in range(K - 1):
                learn(k, s)
        elapsed = clock(device) - start - eval_s
        final = evaluate(stages, data)
    finally:
        torch.set_num_threads(old_threads)
    return {"mode": "in_process", "config": dataclasses.asdict(config), "elapsed_s": elapsed,
            "examples_per_s": config.steps * config.batch_size / elapsed,
            "test_accuracy": final, "evals": evals, "losses": losses, "trace": trace,
            "busy_s": [s.busy_s for s in stages], "threads": threads, "device": device_name(device),
            "state": [s.state() for s in stages]}


def train_backprop(config: ParallelConfig, data: Dataset | None = None,
                   threads: int | None = None, device: str = "cpu",
                   stop: threading.Event | None = None) -> dict[str, Any]:
    """The baseline: the same model, data and batches, one process, plain backprop.

    ``threads`` defaults to all cores (``os.cpu_count()``). Setting ``stop``
    raises ``runner.Stopped`` before the next step.
    """
    config = dataclasses.replace(config).validate()
    data = data if data is not None else load_data(config.seed)
    threads = check_int("threads", threads if threads is not None else (os.cpu_count() or 1), 1)
    device = check_device(device)
    data = to_device(data, device)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with seeded(config.seed):
            model = MLP(data.in_dim, data.n_classes, config.depth, config.width,
                        batchnorm=config.batchnorm).to(device)
        opt = adam(model.parameters(), config.lr)
        batches = batch_indices(len(data.y), config.batch_size, config.steps, config.seed)
        losses, evals, eval_s = [], [], 0.0
        start = clock(device)
        for t, idx in enumerate(batches):
            check_stop(stop)
            idx = idx.to(device)
            model.train()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(data.x[idx]), data.y[idx])
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if config.eval_every and (t + 1) % config.eval_every == 0:
                e0 = clock(device)
                acc = accuracy(model, data.x_test, data.y_test)
                eval_s += clock(device) - e0
                evals.append((t + 1, time.perf_counter() - start - eval_s, acc))
        elapsed = clock(device) - start - eval_s
        final = accuracy(model, data.x_test, data.y_test)
    finally:
        torch.set_num_threads(old_threads)
    return {"mode": "backprop", "config": dataclasses.asdict(config), "elapsed_s": elapsed,
            "examples_per_s": config.steps * config.batch_size / elapsed,
            "test_accuracy": final, "evals": evals, "losses": losses, "threads": threads,
            "device": device_name(device)}
