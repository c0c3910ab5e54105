"""One worker's share of the network: consecutive MLP layers, their synthesizer, their optimisers.

Every worker builds the same seeded model and takes its own stage of it, so
no weights ever travel; only activations (up) and targets (down) do.
"""
from __future__ import annotations

import itertools
import time
from collections import deque
from typing import Iterable

import torch
from torch import Tensor, nn

from ..data.datasets import Dataset, load_dataset, minibatch_indices
from ..diagnostics import activation_health, percent_correct
from ..experiments.mlp import MLP, LayerStep, layer_update
from ..interface import (DecoupledInterface, context_shuffler, label_context, regression_loss,
                         regression_target, synthesizer_loss)
from ..runner import seeded
from ..synthesizer import Synthesizer
from .config import ParallelConfig


def evaluate(stages: list[Stage], data: Dataset) -> float:
    """Test accuracy (percent) of the whole pipeline, its stages run one after the other."""
    h = data.x_test
    for stage in stages:
        h = stage.infer(h)
    return percent_correct(h, data.y_test)


def load_data(seed: int = 0) -> Dataset:
    """MNIST-1D (generated offline), standardised on the training split."""
    return load_dataset("mnist1d", seed=seed)


def adam(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel, which every method of the benchmark uses: one pass over each
    tensor instead of a dozen small ops (on one thread a 512 x 512 layer's update takes about a
    fifth of the time, which counts when a stage's step is a few milliseconds)."""
    return torch.optim.Adam(params, lr=lr, fused=True)


def batch_indices(n: int, batch_size: int, steps: int, seed: int) -> list[Tensor]:
    """The same seeded stream of minibatch indices on every worker (epochs, no ragged end)."""
    batches = minibatch_indices(n, batch_size, torch.Generator().manual_seed(seed + 1))
    return list(itertools.islice(batches, steps))


class Stage:
    """One worker's share: consecutive MLP layers, the synthesizer at their output, optimisers.

    A step is notebook 03's ``layer_step`` cut in two, so the worker can send
    ``h_out`` up before it learns: ``forward`` runs the layers; ``update``
    asks the synthesizer for dL/dh_out (or takes the real loss on the last
    stage), backpropagates it into the stage and steps.
    ``learn_synthesizer`` regresses the synthesizer toward a target that
    arrived later. It regresses the *prediction kept from that step*, with no
    second forward pass, whenever the synthesizer has not changed since it
    made it: a worker learns each due target before its next prediction, so
    with ``target_delay`` 0 or 1 it never has. With a longer delay the kept
    prediction is stale and the synthesizer runs forward again on the kept
    activation. ``busy_s`` adds up the compute time of all three.
    """

    def __init__(self, module: nn.Module, interface: DecoupledInterface | None,
                 config: ParallelConfig, n_classes: int, first: bool,
                 bootstrapped: bool = False) -> None:
        self.module, self.interface = module, interface
        self.first, self.last = first, interface is None
        self.n_classes, self.conditioned = n_classes, config.method == "cdni"
        # the targets from the stage above are bootstrapped unless it is the last one
        self.bootstrapped, self.ablation = bootstrapped, config.ablation
        self.shuffle = context_shuffler(config.ablation, config.seed)
        self.opt = adam(module.parameters(), config.lr)
        self.synth_opt = (adam(interface.parameters(), config.synth_lr)
                          if interface is not None else None)
        # per step awaiting its target: activation, context, prediction, synthesizer updates so far
        self.pending: deque[tuple[Tensor, Tensor | None, Tensor, int]] = deque()
        self.synth_updates = 0
        self.busy_s = 0.0
        self._step: tuple[Tensor, Tensor, Tensor] | None = None

    def forward(self, h_in: Tensor, y: Tensor) -> Tensor | None:
        """Run the stage's layers on ``h_in``; return the activation to send up (None on the last)."""
        t0 = time.perf_counter()
        self.module.train()
        h_in = h_in.detach().requires_grad_(not self.first)
        out = self.module(h_in)
        self._step = (h_in, out, y)
        self.busy_s += time.perf_counter() - t0
        return None if self.last else out.detach()

    def update(self) -> LayerStep:
        """Learn from the forward just run: the synthetic gradient of dL/dh_out, or the real loss.

        ``grad_in`` is what goes down: the (bootstrapped) target for the synthesizer below.
        """
        if self._step is None:
            raise RuntimeError("call forward before update")
        t0 = time.perf_counter()
        (h_in, out, y), self._step = self._step, None
        if self.last:
            result = layer_update(out, h_in, self.opt, y=y)
        else:
            context = label_context(y, self.n_classes, self.shuffle) if self.conditioned else None
            result = layer_update(out, h_in, self.opt, self.interface, context)
            result.h_out = result.h_out.detach()
            self.pending.append((result.h_out, context, self.interface.prediction, self.synth_updates))
        self.busy_s += time.perf_counter() - t0
        return result

    def step(self, h_in: Tensor, y: Tensor) -> LayerStep:
        """``forward`` then ``update``: one step with nothing in between."""
        self.forward(h_in, y)
        return self.update()

    def learn_synthesizer(self, target: Tensor) -> float:
        """Regress the synthesizer, on the oldest pending step, toward ``target``."""
        t0 = time.perf_counter()
        h, context, prediction, updates = self.pending.popleft()
        self.synth_opt.zero_grad(set_to_none=True)
        target = regression_target(target, self.bootstrapped, self.ablation)
        if updates == self.synth_updates:       # made by the synthesizer as it is now
            loss = regression_loss(prediction, target)
        else:
            loss = synthesizer_loss(self.interface.synthesizer, h, target, context)
        loss.backward()
        self.synth_opt.step()
        self.synth_updates += 1
        self.busy_s += time.perf_counter() - t0
        return float(loss.detach())

    def state(self) -> dict:
        """The stage's weights and its synthesizer's, for comparing runs."""
        return {"module": self.module.state_dict(),
                "synthesizer": self.interface.synthesizer.state_dict() if self.interface else None}

    @torch.no_grad()
    def infer(self, h: Tensor) -> Tensor:
        self.module.eval()
        return self.module(h)


def build_stages(config: ParallelConfig, data: Dataset) -> list[Stage]:
    """All K stages, from the same seeded initial weights on every worker."""
    with seeded(config.seed):
        model = MLP(data.in_dim, data.n_classes, config.depth, config.width,
                    batchnorm=config.batchnorm)
    stages = []
    bounds = config.stage_layers()
    with seeded(config.seed + 1):
        for k, (a, b) in enumerate(bounds):
            interface = None
            if k < len(bounds) - 1:
                interface = DecoupledInterface(Synthesizer(
                    config.width, data.n_classes if config.method == "cdni" else 0,
                    kind=config.synth_kind, hidden_dim=config.synth_hidden,
                    projection=config.synth_projection),
                    zero_output=config.ablation == "zero_synthetic_gradient")
            module = nn.Sequential(*[model.layers[i] for i in range(a, b)])
            stages.append(Stage(module, interface, config, data.n_classes, first=(k == 0),
                                bootstrapped=k < len(bounds) - 2))
    return stages


def interface_health(config: ParallelConfig, state: list[dict], data: Dataset
                     ) -> list[dict[str, float]]:
    """``activation_health`` of what each stage but the last sends up, on the test set,
    from a run's final weights (``state``: its ``"state"``, one entry per stage)."""
    stages = build_stages(config, data)
    if len(state) != len(stages):
        raise ValueError(f"state must have one entry per stage ({len(stages)}), got {len(state)}")
    h, health = data.x_test, []
    for stage, weights in zip(stages[:-1], state[:-1]):
        stage.module.load_state_dict(weights["module"])
        h = stage.infer(h)
        health.append(activation_health(h))
    return health
