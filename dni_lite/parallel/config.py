"""What a pipelined DNI run is: the model, its split into stages, the schedule, the budget."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

from ..interface import ABLATIONS
from ..synthesizer import KINDS
from ..validate import check_bool, check_choice, check_float, check_int


@dataclass
class ParallelConfig:
    """Everything a worker needs to rebuild its stage, its data and its schedule.

    The model is an MLP with ``depth`` hidden layers of size ``width`` (so
    ``depth + 1`` linear layers) split into ``workers`` stages of consecutive
    layers; each stage boundary is a decoupled interface whose synthesizer
    sees the activation (``method="dni"``) or also the label (``"cdni"``).
    ``synth_projection``: if > 0, each synthesizer sees the activation through a fixed
    random projection to that many dimensions (``Synthesizer``'s ``projection``).
    ``target_delay``: a worker regresses its synthesizer on the target of the
    minibatch that many steps back (0: wait for the current one).
    ``eval_every``: score the test set through the pipeline every so many
    steps (0: only at the end); evaluation time is not counted as training.
    ``threads``: torch threads per worker. ``timeout_s``: the process group's
    timeout. ``ablation``: one of ``interface.ABLATIONS`` at every stage boundary.
    ``stages``: how many consecutive layers each stage holds (``None``: as
    equal as possible; ``balance.balanced_stages`` picks them from measured
    costs). ``batchnorm``: BatchNorm in the hidden layers (pipeline backprop
    baselines run without it: its statistics would be per micro-batch).
    For tests: ``trace_steps`` records the tensors each worker
    receives in its first steps; ``fail_rank`` fails at step ``fail_step``.
    """

    workers: int = 2
    depth: int = 3
    width: int = 256
    method: str = "cdni"
    synth_kind: str = "linear"
    synth_hidden: int = 64
    synth_projection: int = 0
    lr: float = 1e-3
    synth_lr: float = 1e-3
    batch_size: int = 64
    steps: int = 500
    target_delay: int = 1
    eval_every: int = 0
    seed: int = 0
    threads: int = 1
    timeout_s: float = 120.0
    stages: tuple[int, ...] | None = None
    batchnorm: bool = True
    trace_steps: int = 0
    fail_rank: int = -1
    fail_step: int = -1
    ablation: str = "none"

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
        check_choice("method", self.method, ("dni", "cdni"))
        check_choice("synth_kind", self.synth_kind, KINDS)
        check_int("synth_hidden", self.synth_hidden, 1)
        check_int("synth_projection", self.synth_projection, 0)
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
        check_choice("ablation", self.ablation, ABLATIONS)
        check_bool("batchnorm", self.batchnorm)
        if self.stages is not None:
            if not isinstance(self.stages, (tuple, list)) or len(self.stages) != self.workers:
                raise ValueError(f"stages must list one layer count per worker ({self.workers}), "
                                 f"got {self.stages!r}")
            self.stages = tuple(check_int(f"stages[{k}]", n, 1, layers)
                                for k, n in enumerate(self.stages))
            if sum(self.stages) != layers:
                raise ValueError(f"stages must add up to the {layers} layers of depth="
                                 f"{self.depth}, got {list(self.stages)} (sum {sum(self.stages)})")
        return self

    def stage_layers(self) -> list[tuple[int, int]]:
        """[start, stop) layer indices of each stage: ``stages`` or as equal as possible."""
        layers, k = self.depth + 1, self.workers
        if self.stages is not None:
            bounds = [sum(self.stages[:i]) for i in range(k + 1)]
        else:
            bounds = [round(i * layers / k) for i in range(k + 1)]
        return list(zip(bounds[:-1], bounds[1:]))


def check_configs(configs: ParallelConfig | Sequence[ParallelConfig]) -> list[ParallelConfig]:
    """One config or several, each validated, all with the same number of workers."""
    single = isinstance(configs, ParallelConfig)
    configs = [configs] if single else list(configs)
    if not configs or not all(isinstance(c, ParallelConfig) for c in configs):
        raise ValueError("config must be a ParallelConfig or a non-empty list of them")
    configs = [dataclasses.replace(c).validate() for c in configs]
    if len({c.workers for c in configs}) > 1:
        raise ValueError(f"all configs of one launch must use the same number of workers, got "
                         f"{sorted({c.workers for c in configs})}")
    return configs
