"""Decoupled training in parallel: one module per worker process on torch.distributed.

The network is cut into K *stages* (consecutive layers), one per worker. Every
cut is a decoupled interface, so no worker ever waits for a backward pass:

    worker k, minibatch t:
      1. receive the activation h_{k-1}(t) from worker k-1 (worker 0 reads x);
      2. run its module, ask its synthesizer for dL/dh_k and update at once
         (update unlocking); the gradient that lands on its input is the
         *bootstrapped target* for worker k-1's synthesizer;
      3. send h_k(t) up and that target down (non-blocking sends);
      4. receive the target for step t - delay from worker k+1 and regress its
         synthesizer on it. With ``target_delay >= 1`` that target was sent while
         this worker was busy with step t, so in steady state nobody waits.

The last worker owns the loss and learns from the true gradient. Transport is
torch.distributed's gloo backend with point-to-point ``isend``/``recv``, so the
same worker code runs as local processes (``train_parallel``) or across
machines with ``torchrun`` (``python -m dni_lite.parallel --config cfg.json``).

``train_in_process`` runs exactly the same per-worker steps in the same order,
one after the other in a single process: the reference the parallel run must
reproduce, and the single-process cost of DNI. ``train_backprop`` is the
baseline: the same model and data, one process, ordinary backprop.

Every worker knows the labels (each one builds the same seeded batches): the
last one needs them for the loss, the others as cDNI context. Labels are tiny;
activations and gradients are what travels.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import Dataset, load_dataset, minibatch_indices
from .interface import DecoupledInterface
from .mlp import MLP, LayerStep, layer_step, synthesizer_step
from .mlp import accuracy as mlp_accuracy
from .synthesizer import Synthesizer
from .validate import check_bool, check_choice, check_float, check_int


# ----------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------
@dataclass
class ParallelConfig:
    """Everything a worker needs to rebuild its stage, its data and its schedule.

    The model is an MLP with ``depth`` hidden layers of size ``width`` (so
    ``depth + 1`` linear layers) split into ``workers`` stages of consecutive
    layers; each stage boundary is a decoupled interface (cDNI when ``context``).
    ``target_delay``: a worker regresses its synthesizer on the target of the
    minibatch that many steps back (0: wait for the current one).
    ``eval_every``: score the test set through the pipeline every so many
    steps (0: only at the end); evaluation time is not counted as training.
    ``threads``: torch threads per worker. ``timeout_s``: the process group's
    timeout. For tests: ``trace_steps`` records the tensors each worker
    receives in its first steps; ``fail_rank`` fails at step ``fail_step``.
    """

    workers: int = 2
    depth: int = 3
    width: int = 256
    context: bool = True
    synth_kind: str = "linear"
    synth_hidden: int = 64
    lr: float = 1e-3
    synth_lr: float = 1e-3
    batch_size: int = 64
    steps: int = 500
    target_delay: int = 1
    eval_every: int = 0
    seed: int = 0
    threads: int = 1
    timeout_s: float = 120.0
    trace_steps: int = 0
    fail_rank: int = -1
    fail_step: int = -1

    def validate(self) -> "ParallelConfig":
        """Check every field; raise ValueError naming the bad one."""
        check_int("depth", self.depth, 1, 64)
        check_int("width", self.width, 1, 1 << 16)
        layers = self.depth + 1
        check_int("workers", self.workers, 1)
        if not 2 <= self.workers <= layers:
            raise ValueError(f"workers must be between 2 and {layers} for an MLP with depth="
                             f"{self.depth} ({layers} layers, at most one stage per layer), "
                             f"got {self.workers}")
        check_bool("context", self.context)
        check_choice("synth_kind", self.synth_kind, ("linear", "mlp"))
        check_int("synth_hidden", self.synth_hidden, 1)
        check_float("lr", self.lr, 0.0, low_open=True)
        check_float("synth_lr", self.synth_lr, 0.0, low_open=True)
        check_int("batch_size", self.batch_size, 2)   # BatchNorm needs two examples
        check_int("steps", self.steps, 1)
        check_int("target_delay", self.target_delay, 0, 8)
        check_int("eval_every", self.eval_every, 0)
        check_int("seed", self.seed, 0)
        check_int("threads", self.threads, 1)
        check_float("timeout_s", self.timeout_s, 0.0, low_open=True)
        check_int("trace_steps", self.trace_steps, 0)
        check_int("fail_rank", self.fail_rank, -1)
        check_int("fail_step", self.fail_step, -1)
        return self

    def stage_layers(self) -> list[tuple[int, int]]:
        """[start, stop) layer indices of each stage, as equal as possible."""
        layers, k = self.depth + 1, self.workers
        bounds = [round(i * layers / k) for i in range(k + 1)]
        return list(zip(bounds[:-1], bounds[1:]))


# ----------------------------------------------------------------------------------------
# Data and model pieces (notebook 03's MLP, layer step and synthesizer step)
# ----------------------------------------------------------------------------------------
def load_data(seed: int = 0) -> Dataset:
    """MNIST-1D (generated offline), standardised on the training split."""
    return load_dataset("mnist1d", seed=seed)


def batch_indices(n: int, batch_size: int, steps: int, seed: int) -> list[Tensor]:
    """The same seeded stream of minibatch indices on every worker (epochs, no ragged end)."""
    batches = minibatch_indices(n, batch_size, torch.Generator().manual_seed(seed + 1))
    return list(itertools.islice(batches, steps))


class Stage:
    """One worker's share: consecutive MLP layers, the synthesizer at their output, optimisers.

    ``step`` is notebook 03's ``layer_step`` (forward, update at once from the
    synthetic gradient, or from the real loss on the last stage);
    ``learn_synthesizer`` is its ``synthesizer_step`` for a target that
    arrived later, re-run on the activation it belongs to. ``busy_s`` adds up
    the compute time of both.
    """

    def __init__(self, module: nn.Module, interface: DecoupledInterface | None,
                 config: ParallelConfig, n_classes: int, first: bool) -> None:
        self.module, self.interface = module, interface
        self.first, self.last = first, interface is None
        self.n_classes, self.context = n_classes, config.context
        self.opt = torch.optim.Adam(module.parameters(), lr=config.lr)
        self.synth_opt = (torch.optim.Adam(interface.parameters(), lr=config.synth_lr)
                          if interface is not None else None)
        self.pending: deque[tuple[Tensor, Tensor | None]] = deque()
        self.busy_s = 0.0

    def step(self, h_in: Tensor, y: Tensor) -> LayerStep:
        """Forward and update at once; ``h_out`` goes up, ``grad_in`` goes down."""
        t0 = time.perf_counter()
        context = F.one_hot(y, self.n_classes).float() if self.context else None
        result = layer_step(self.module, self.opt, h_in.detach(), interface=self.interface,
                            context=context if self.interface else None,
                            y=y if self.last else None, send_gradient=not self.first)
        if self.interface is not None:
            result.h_out = result.h_out.detach()
            self.pending.append((result.h_out, context))
        self.busy_s += time.perf_counter() - t0
        return result

    def learn_synthesizer(self, target: Tensor) -> float:
        """Regress the synthesizer, on the oldest pending activation, toward ``target``."""
        t0 = time.perf_counter()
        h, context = self.pending.popleft()
        self.interface(h, context)
        loss = synthesizer_step(self.interface, self.synth_opt, target)
        self.busy_s += time.perf_counter() - t0
        return loss

    @torch.no_grad()
    def infer(self, h: Tensor) -> Tensor:
        self.module.eval()
        return self.module(h)


def build_stages(config: ParallelConfig, data: Dataset) -> list[Stage]:
    """All K stages, from the same seeded initial weights on every worker."""
    torch.manual_seed(config.seed)
    model = MLP(data.in_dim, data.n_classes, config.depth, config.width)
    torch.manual_seed(config.seed + 1)
    stages = []
    bounds = config.stage_layers()
    for k, (a, b) in enumerate(bounds):
        interface = None
        if k < len(bounds) - 1:
            interface = DecoupledInterface(Synthesizer(
                config.width, data.n_classes if config.context else 0, kind=config.synth_kind,
                hidden_dim=config.synth_hidden))
        module = nn.Sequential(*[model.layers[i] for i in range(a, b)])
        stages.append(Stage(module, interface, config, data.n_classes, first=(k == 0)))
    return stages


def accuracy(logits: Tensor, y: Tensor) -> float:
    """Classification accuracy in percent."""
    return 100.0 * float((logits.argmax(dim=1) == y).float().mean())


# ----------------------------------------------------------------------------------------
# The reference: the same per-worker steps, one after the other, in one process
# ----------------------------------------------------------------------------------------
def train_in_process(config: ParallelConfig, data: Dataset | None = None,
                     threads: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """Run the pipelined schedule sequentially in this process (``threads``: default config's).

    Stage k at minibatch t does exactly what worker k does: ``step`` on t,
    then ``learn_synthesizer`` with the target of t - ``target_delay``. The
    result has the same fields as ``train_parallel``'s.
    """
    config = dataclasses.replace(config).validate()
    data = data if data is not None else load_data(config.seed)
    threads = check_int("threads", threads if threads is not None else config.threads, 1)
    device = _check_device(device)
    data = _to_device(data, device)
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

        start = _clock(device)
        for t, idx in enumerate(batches):
            idx = idx.to(device)
            h, y = data.x[idx], data.y[idx]
            for k, stage in enumerate(stages):
                if k > 0 and t < config.trace_steps:
                    trace[k]["activations"].append((t, h.clone()))
                result = stage.step(h, y)
                if k > 0:
                    targets[k - 1][t] = result.grad_in
                h = result.h_out
            losses.append(result.loss)
            for k in range(K - 1):
                if t - D >= 0:
                    learn(k, t - D)
            if config.eval_every and (t + 1) % config.eval_every == 0:
                e0 = _clock(device)
                acc = _evaluate(stages, data)
                eval_s += _clock(device) - e0
                evals.append((t + 1, time.perf_counter() - start - eval_s, acc))
        for s in range(max(0, config.steps - D), config.steps):   # the last targets
            for k in range(K - 1):
                learn(k, s)
        elapsed = _clock(device) - start - eval_s
        final = _evaluate(stages, data)
    finally:
        torch.set_num_threads(old_threads)
    return {"mode": "in_process", "config": dataclasses.asdict(config), "elapsed_s": elapsed,
            "examples_per_s": config.steps * config.batch_size / elapsed,
            "test_accuracy": final, "evals": evals, "losses": losses, "trace": trace,
            "busy_s": [s.busy_s for s in stages], "threads": threads, "device": device_name(device),
            "state": [_state(s) for s in stages]}


def _state(stage: Stage) -> dict[str, Any]:
    return {"module": stage.module.state_dict(),
            "synthesizer": stage.interface.synthesizer.state_dict() if stage.interface else None}


def _evaluate(stages: list[Stage], data: Dataset) -> float:
    h = data.x_test
    for stage in stages:
        h = stage.infer(h)
    return accuracy(h, data.y_test)


def train_backprop(config: ParallelConfig, data: Dataset | None = None,
                   threads: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """The baseline: the same model, data and batches, one process, plain backprop.

    ``threads`` defaults to all cores (``os.cpu_count()``).
    """
    config = dataclasses.replace(config).validate()
    data = data if data is not None else load_data(config.seed)
    threads = check_int("threads", threads if threads is not None else (os.cpu_count() or 1), 1)
    device = _check_device(device)
    data = _to_device(data, device)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(config.seed)
        model = MLP(data.in_dim, data.n_classes, config.depth, config.width).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        batches = batch_indices(len(data.y), config.batch_size, config.steps, config.seed)
        losses, evals, eval_s = [], [], 0.0
        start = _clock(device)
        for t, idx in enumerate(batches):
            idx = idx.to(device)
            model.train()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(data.x[idx]), data.y[idx])
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if config.eval_every and (t + 1) % config.eval_every == 0:
                e0 = _clock(device)
                acc = mlp_accuracy(model, data.x_test, data.y_test)
                eval_s += _clock(device) - e0
                evals.append((t + 1, time.perf_counter() - start - eval_s, acc))
        elapsed = _clock(device) - start - eval_s
        final = mlp_accuracy(model, data.x_test, data.y_test)
    finally:
        torch.set_num_threads(old_threads)
    return {"mode": "backprop", "config": dataclasses.asdict(config), "elapsed_s": elapsed,
            "examples_per_s": config.steps * config.batch_size / elapsed,
            "test_accuracy": final, "evals": evals, "losses": losses, "threads": threads,
            "device": device_name(device)}


def _check_device(device: str) -> str:
    if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
        raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but no CUDA GPU is available")
    return device


def _to_device(data: Dataset, device: str) -> Dataset:
    if device == "cpu":
        return data
    return dataclasses.replace(data, x=data.x.to(device), y=data.y.to(device),
                               x_test=data.x_test.to(device), y_test=data.y_test.to(device))


def _clock(device: str) -> float:
    """perf_counter after the device has finished its queued work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    return time.perf_counter()


def device_name(device: str = "cpu") -> str:
    """A label for figures: 'cpu (N cores)' or 'cuda:0 (GPU name)'."""
    if device.startswith("cuda"):
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({os.cpu_count()} cores)"


# ----------------------------------------------------------------------------------------
# The worker: one stage, talking to its neighbours through torch.distributed
# ----------------------------------------------------------------------------------------
_ACT, _TARGET, _EVAL = 0, 1, 2


def _tag(step: int, kind: int) -> int:
    return 3 * step + kind


def run_worker(configs: ParallelConfig | Sequence[ParallelConfig], out_dir: str | None = None,
               data: Dataset | None = None) -> list[dict[str, Any]]:
    """Run this process's stage for each config in turn; rank and world size come from the env.

    Works under ``train_parallel`` and under ``torchrun`` (both set RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Writes ``rank{k}.pt`` to ``out_dir``.
    """
    import torch.distributed as dist

    configs = _check_configs(configs)
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
            results.append(_worker_loop(config, data, rank, world, dist))
    finally:
        dist.destroy_process_group()
    if out_dir is not None:
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    return results


def _check_configs(configs: ParallelConfig | Sequence[ParallelConfig]) -> list[ParallelConfig]:
    single = isinstance(configs, ParallelConfig)
    configs = [configs] if single else list(configs)
    if not configs or not all(isinstance(c, ParallelConfig) for c in configs):
        raise ValueError("config must be a ParallelConfig or a non-empty list of them")
    configs = [dataclasses.replace(c).validate() for c in configs]
    if len({c.workers for c in configs}) > 1:
        raise ValueError(f"all configs of one launch must use the same number of workers, got "
                         f"{sorted({c.workers for c in configs})}")
    return configs


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

    def recv(src: int, tag: int) -> Tensor:
        nonlocal wait_s
        t0 = time.perf_counter()
        buf = torch.empty(shape)
        dist.recv(buf, src=src, tag=tag)
        wait_s += time.perf_counter() - t0
        return buf

    def learn(s: int) -> None:
        target = recv(rank + 1, _tag(s, _TARGET))
        if s < config.trace_steps:
            trace["targets"].append((s, target.clone()))
        stage.learn_synthesizer(target)

    delay_s = _ping(dist, rank, shape)
    dist.barrier()
    start = time.perf_counter()
    for t, idx in enumerate(batches):
        if t == config.fail_step and rank == config.fail_rank:
            raise RuntimeError(f"injected failure on worker {rank} at step {t}")
        y = data.y[idx]
        if first:
            h_in = data.x[idx]
        else:
            h_in = recv(rank - 1, _tag(t, _ACT))
            if t < config.trace_steps:
                trace["activations"].append((t, h_in.clone()))
        result = stage.step(h_in, y)
        if not last:
            sends.append(dist.isend(result.h_out, rank + 1, tag=_tag(t, _ACT)))
        if not first:
            sends.append(dist.isend(result.grad_in, rank - 1, tag=_tag(t, _TARGET)))
        losses.append(result.loss)
        if not last and t - D >= 0:
            learn(t - D)
        if config.eval_every and (t + 1) % config.eval_every == 0:
            e0 = time.perf_counter()
            acc = _evaluate_pipelined(stage, data, config, rank, world, t, dist)
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
    final = _evaluate_pipelined(stage, data, config, rank, world, config.steps, dist)
    dist.barrier()
    return {"rank": rank, "elapsed_s": elapsed, "wait_s": wait_s, "busy_s": stage.busy_s,
            "eval_s": eval_s, "delay_s": delay_s, "losses": losses, "evals": evals,
            "test_accuracy": final, "trace": trace, "threads": torch.get_num_threads(),
            "state": _state(stage)}


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


def _evaluate_pipelined(stage: Stage, data: Dataset, config: ParallelConfig, rank: int,
                        world: int, step: int, dist: Any) -> float:
    """Forward the test set through the pipeline; the last worker scores it."""
    tag = _tag(step, _EVAL)
    if rank == 0:
        h = data.x_test
    else:
        h = torch.empty(len(data.y_test), config.width)
        dist.recv(h, src=rank - 1, tag=tag)
    h = stage.infer(h)
    if rank < world - 1:
        dist.send(h.contiguous(), rank + 1, tag=tag)
        return float("nan")
    return accuracy(h, data.y_test)


# ----------------------------------------------------------------------------------------
# The launcher: start K local workers, watch them, never leave one behind
# ----------------------------------------------------------------------------------------
class WorkerError(RuntimeError):
    """A worker process failed (or the run timed out); all workers have been stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_parallel(config: ParallelConfig | Sequence[ParallelConfig], processes: int | None = None,
                   data: Dataset | None = None) -> dict[str, Any] | list[dict[str, Any]]:
    """Train with one local worker process per stage and return the merged result.

    A list of configs runs one after the other in the same worker processes
    (one start-up for a whole sweep) and returns a list of results.
    ``processes`` defaults to ``config.workers``; any other number is refused
    before anything starts. If a worker fails, the others are stopped at once
    and a ``WorkerError`` says which worker failed and why; a run that exceeds
    the configs' ``timeout_s`` (summed) is stopped the same way.
    """
    single = isinstance(config, ParallelConfig)
    configs = _check_configs(config)
    workers = configs[0].workers
    processes = workers if processes is None else check_int("processes", processes, 1)
    if processes != workers:
        raise ValueError(f"this model (depth={configs[0].depth}) is split into workers="
                         f"{workers} stages, so it needs exactly {workers} worker "
                         f"processes, got processes={processes}")
    data = data if data is not None else load_data(configs[0].seed)
    with tempfile.TemporaryDirectory(prefix="dni_parallel_") as tmp:
        cfg_path = os.path.join(tmp, "config.json")
        with open(cfg_path, "w") as f:
            json.dump([dataclasses.asdict(c) for c in configs], f)
        torch.save(dataclasses.asdict(data), os.path.join(tmp, "data.pt"))
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
                   WORLD_SIZE=str(processes), OMP_NUM_THREADS=str(configs[0].threads),
                   DNI_LITE_PARENT_PID=str(os.getpid()))
        procs, logs = [], []
        try:
            for rank in range(processes):
                log = open(os.path.join(tmp, f"rank{rank}.log"), "w")
                logs.append(log)
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "dni_lite.parallel", "--config", cfg_path,
                     "--out", tmp, "--data", os.path.join(tmp, "data.pt")],
                    env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)),
                    stdout=log, stderr=subprocess.STDOUT))
            _watch(procs, tmp, sum(c.timeout_s for c in configs) + 30.0)
        finally:
            _stop_all(procs)
            for log in logs:
                log.close()
        per_rank = [torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=False)
                    for r in range(processes)]
    merged = [_merge(c, [per_rank[r][i] for r in range(processes)])
              for i, c in enumerate(configs)]
    return merged[0] if single else merged


def _watch(procs: list[subprocess.Popen], tmp: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        codes = [p.poll() for p in procs]
        failed = [r for r, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            # The first to fail is the cause; the others usually die of a closed connection.
            time.sleep(0.2)
            rank = min(failed, key=lambda r: _root_cause_rank(tmp, r))
            raise WorkerError(f"worker {rank} of {len(procs)} failed ({_describe(codes[rank])}): "
                              f"{_last_error(tmp, rank)}; all workers were stopped")
        if all(c == 0 for c in codes):
            return
        if time.monotonic() > deadline:
            raise WorkerError(f"the parallel run did not finish within {timeout_s:.0f} s; "
                              "all workers were stopped")
        time.sleep(0.02)


def _root_cause_rank(tmp: str, rank: int) -> int:
    """Sort key: workers that died of a peer's failure (connection errors) come last."""
    text = _last_error(tmp, rank).lower()
    secondary = any(s in text for s in ("connection", "gloo", "timed out", "peer"))
    return (1 if secondary else 0) * 1000 + rank


def _describe(code: int | None) -> str:
    if code is None:
        return "still running"
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def _last_error(tmp: str, rank: int) -> str:
    try:
        with open(os.path.join(tmp, f"rank{rank}.log")) as f:
            lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
    except OSError:
        return "no log"
    lines = [re.sub(r"^\[rank\d+\]:\s*", "", ln) for ln in lines]
    errors = [ln for ln in lines if "Error" in ln.split(":")[0] or "Exception" in ln.split(":")[0]]
    return errors[-1] if errors else (lines[-1] if lines else "no output")


def _stop_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 3.0
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _merge(config: ParallelConfig, results: list[dict[str, Any]]) -> dict[str, Any]:
    elapsed = max(r["elapsed_s"] for r in results)
    last = results[-1]
    return {"mode": "parallel", "config": dataclasses.asdict(config), "elapsed_s": elapsed,
            "examples_per_s": config.steps * config.batch_size / elapsed,
            "test_accuracy": last["test_accuracy"], "evals": last["evals"],
            "losses": last["losses"], "trace": [r["trace"] for r in results],
            "busy_s": [r["busy_s"] for r in results],
            "wait_s": [r["wait_s"] for r in results], "delay_s": results[0]["delay_s"],
            "worker_elapsed_s": [r["elapsed_s"] for r in results],
            "threads": [r["threads"] for r in results], "device": device_name("cpu"),
            "state": [r["state"] for r in results]}


# ----------------------------------------------------------------------------------------
# Entry point for one worker (local launcher or torchrun)
# ----------------------------------------------------------------------------------------
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="One worker of a pipelined DNI run "
                                     "(start with torchrun --nproc-per-node K).")
    parser.add_argument("--config", help="JSON file with ParallelConfig fields")
    parser.add_argument("--out", default=None, help="folder for rank{k}.pt results")
    parser.add_argument("--data", default=None, help="saved Dataset tensors (default: MNIST-1D)")
    args = parser.parse_args(argv)
    fields: Any = {}
    if args.config:
        with open(args.config) as f:
            fields = json.load(f)
    configs = [ParallelConfig(**c) for c in (fields if isinstance(fields, list) else [fields])]
    _exit_with_parent()
    data = Dataset(**torch.load(args.data)) if args.data else None
    for result in run_worker(configs, args.out, data):
        if result["rank"] == int(os.environ["WORLD_SIZE"]) - 1:
            print(f"test accuracy {result['test_accuracy']:.2f}%, {result['elapsed_s']:.2f} s "
                  f"of training on the last worker")


if __name__ == "__main__":
    main()
