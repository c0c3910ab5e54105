"""Start K local worker processes, watch them, and never leave one behind.

``train_parallel`` runs one worker process per stage on 127.0.0.1 (gloo,
point-to-point messages) and merges their results. If a worker fails, the
others are stopped at once and a ``WorkerError`` names the one that failed.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Sequence

import torch

from ..data.datasets import Dataset
from ..runner import check_stop
from ..validate import check_int
from .config import ParallelConfig, check_configs
from .devices import device_name
from .stage import load_data


class WorkerError(RuntimeError):
    """A worker process failed (or the run timed out); all workers have been stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_parallel(config: ParallelConfig | Sequence[ParallelConfig], processes: int | None = None,
                   data: Dataset | None = None, stop: threading.Event | None = None
                   ) -> dict[str, Any] | list[dict[str, Any]]:
    """Train with one local worker process per stage and return the merged result.

    A list of configs runs one after the other in the same worker processes
    (one start-up for a whole sweep) and returns a list of results.
    ``processes`` defaults to ``config.workers``; any other number is refused
    before anything starts. If a worker fails, the others are stopped at once
    and a ``WorkerError`` says which worker failed and why; a run that exceeds
    the configs' ``timeout_s`` (summed) is stopped the same way, and so is one
    whose ``stop`` event is set (``runner.Stopped`` is raised).
    """
    single = isinstance(config, ParallelConfig)
    configs = check_configs(config)
    workers = configs[0].workers
    processes = workers if processes is None else check_int("processes", processes, 1)
    if processes != workers:
        raise ValueError(f"this model (depth={configs[0].depth}) is split into workers="
                         f"{workers} stages, so it needs exactly {workers} worker "
                         f"processes, got processes={processes}")
    per_rank = run_workers("dni_lite.parallel", configs, processes, data, stop)
    merged = [_merge(c, [per_rank[r][i] for r in range(processes)])
              for i, c in enumerate(configs)]
    return merged[0] if single else merged


def run_workers(module: str, configs: list[ParallelConfig], processes: int,
                data: Dataset | None = None, stop: threading.Event | None = None,
                args: Sequence[str] = ()) -> list[list[dict[str, Any]]]:
    """Start ``python -m module`` once per rank with the configs and data, watch them, and
    return each rank's list of results (what it saved as ``rank{k}.pt``)."""
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
                    [sys.executable, "-m", module, "--config", cfg_path,
                     "--out", tmp, "--data", os.path.join(tmp, "data.pt"), *args],
                    env=dict(env, RANK=str(rank), LOCAL_RANK=str(rank)),
                    stdout=log, stderr=subprocess.STDOUT))
            _watch(procs, tmp, sum(c.timeout_s for c in configs) + 30.0, stop)
        finally:
            _stop_all(procs)
            for log in logs:
                log.close()
        return [torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=False)
                for r in range(processes)]


def _watch(procs: list[subprocess.Popen], tmp: str, timeout_s: float,
           stop: threading.Event | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        check_stop(stop)
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
