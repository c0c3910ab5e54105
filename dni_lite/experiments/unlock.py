"""Notebook 04's model: an MLP whose layers update stochastically, late, and unlocked.

Built from notebook 03's pieces (``DecoupledMLP``, ``layer_step``,
``synthesizer_step``): every boundary of the MLP is a DNI/cDNI cut, and on top
of that

* **stochastic updates**: each layer updates its weights only with
  probability ``p`` per step, as if the layers were running at different,
  unsynchronised speeds. Every layer still runs forward and sends its
  gradient down, so the synthesizers (and synthetic-input models) keep
  regressing at every step; with ``p = 0`` no layer's weights ever move;
* **staleness**: synthesizer targets (and real inputs, below) arrive ``delay``
  steps late, so a synthesizer regresses today on a pair from ``delay`` steps ago;
* **forward unlocking**: a ``SyntheticInput`` model predicts a layer's input
  from the network input x alone, so the layer need not wait for the layers
  below; when the real input arrives it becomes the regression target. With
  every layer forward-unlocked and every boundary decoupled, no layer waits on
  another's forward or backward pass: complete unlocking.

A layer that runs on a synthetic input sends up the output it computed from
it; the layer above regresses toward that. The test accuracy is always
measured on the real forward chain x -> layer 1 -> ... -> output.
"""
from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.datasets import load_dataset
from ..diagnostics import relative_error
from ..interface import ABLATIONS, regression_target, synthesizer_loss
from ..runner import Result, Row, seeded
from ..synthesizer import KINDS
from ..validate import check_bool, check_choice, check_float, check_int
from .mlp import (MLP, DecoupledMLP, MLPBaseSettings, layer_step, lockstep_epochs,
                  synthesizer_step)

FORWARD_UNLOCK = ("none", "top", "all")
SG_METHODS = ("dni", "cdni")
BACKPROP = "backprop"      # a variant value: the same MLP trained with ordinary backprop


class SyntheticInput(nn.Module):
    """Predicts a layer's input h from the network input x (no waiting for lower layers).

    Args:
        in_dim: size of x.
        out_dim: size of the predicted input h.
        kind: ``"linear"`` or ``"mlp"`` (one hidden ReLU layer and a ReLU output,
            since the inputs it predicts come out of ReLU layers).
        hidden_dim: width of the MLP's hidden layer.
    """

    def __init__(self, in_dim: int, out_dim: int, kind: str = "mlp", hidden_dim: int = 256) -> None:
        super().__init__()
        check_int("in_dim", in_dim, 1)
        check_int("out_dim", out_dim, 1)
        self.kind = check_choice("kind", kind, KINDS)
        check_int("hidden_dim", hidden_dim, 1)
        if kind == "linear":
            self.net = nn.Sequential(nn.Linear(in_dim, out_dim))
        else:
            # the inputs it predicts are ReLU outputs, so its output is one too
            self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(),
                                     nn.Linear(hidden_dim, out_dim), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def regression_loss(self, x: Tensor, real_input: Tensor) -> Tensor:
        """Mean squared error of the prediction for ``x`` against the real input."""
        if real_input.shape[0] != x.shape[0]:
            raise ValueError(f"real_input must have one row per example ({x.shape[0]}), "
                             f"got {real_input.shape[0]}")
        return F.mse_loss(self(x), real_input.detach())


def input_step(model: SyntheticInput, optimizer: torch.optim.Optimizer, x: Tensor,
               real_input: Tensor) -> float:
    """One regression step of a synthetic-input model toward the real input; returns the loss."""
    optimizer.zero_grad(set_to_none=True)
    loss = model.regression_loss(x, real_input)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def stale_synthesizer_step(synthesizer: nn.Module, optimizer: torch.optim.Optimizer,
                           h: Tensor, context: Tensor | None, target: Tensor) -> float:
    """Regress a synthesizer on an old pair: its prediction for ``h`` (now) toward ``target``.

    ``target`` is a raw dL/dh of a batch-mean loss that arrived late for ``h``.
    """
    optimizer.zero_grad(set_to_none=True)
    loss = synthesizer_loss(synthesizer, h, target, context)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@dataclass(frozen=True)
class Unlocking:
    """How unlocked a decoupled MLP trains.

    ``p``: probability that a layer updates at a step; ``delay``: steps late at
    which synthesizer targets and real inputs arrive; ``forward``: which layers
    run on synthetic inputs (``"none"``, ``"top"`` = the output layer, ``"all"``
    layers above the first); ``ablation``: one of ``interface.ABLATIONS`` for
    this variant alone (``None``: the experiment's ``ablation`` setting).
    """

    p: float = 1.0
    delay: int = 0
    forward: str = "none"
    ablation: str | None = None

    def __post_init__(self) -> None:
        check_float("p", self.p, 0.0, 1.0)
        check_int("delay", self.delay, 0, 1000)
        check_choice("forward", self.forward, FORWARD_UNLOCK)
        if self.ablation is not None:
            check_choice("ablation", self.ablation, ABLATIONS)


class UnlockedMLP:
    """A ``DecoupledMLP`` with every boundary cut, trained under an ``Unlocking``.

    Args:
        setup: a ``DecoupledMLP`` whose boundaries are all ``"dni"`` or ``"cdni"``.
        unlocking: p, delay and forward unlocking.
        input_kind, input_hidden, input_lr: the synthetic-input models and their Adam rate.
        seed: seeds the coin flips of the stochastic updates.
    """

    def __init__(self, setup: DecoupledMLP, unlocking: Unlocking = Unlocking(),
                 input_kind: str = "mlp", input_hidden: int = 256, input_lr: float = 3e-3,
                 seed: int = 0) -> None:
        if not isinstance(setup, DecoupledMLP):
            raise ValueError(f"setup must be a DecoupledMLP, got {type(setup).__name__}")
        if any(mode not in SG_METHODS for mode in setup.modes):
            raise ValueError(f"every boundary must be one of {list(SG_METHODS)}, got {setup.modes}")
        if not isinstance(unlocking, Unlocking):
            raise ValueError(f"unlocking must be an Unlocking, got {type(unlocking).__name__}")
        check_float("input_lr", input_lr, 0.0, low_open=True)
        check_int("seed", seed, 0)
        self.setup, self.unlocking = setup, unlocking
        depth = setup.model.depth
        unlocked = {"none": [], "top": [depth], "all": list(range(1, depth + 1))}
        self.forward_unlocked = unlocked[unlocking.forward]
        in_dim = setup.model.layers[0][0].in_features
        self.inputs = {layer: SyntheticInput(in_dim, setup.model.width, input_kind, input_hidden)
                       for layer in self.forward_unlocked}
        self.input_optimizers = {layer: torch.optim.Adam(m.parameters(), lr=input_lr)
                                 for layer, m in self.inputs.items()}
        self._coins = torch.Generator().manual_seed(seed + 3)
        self.steps = 0
        self.updates = [0] * (depth + 1)       # how many steps each layer updated its weights
        self._targets = [deque() for _ in range(depth)]       # (h, context, target) per boundary
        self._real_inputs = {layer: deque() for layer in self.forward_unlocked}   # (x, h)

    @property
    def model(self) -> MLP:
        return self.setup.model

    def step(self, x: Tensor, y: Tensor) -> dict[str, float]:
        """One training step; returns the loss, synthesizer losses and synthetic-input errors.

        With ``p == 1``, ``delay == 0`` and ``forward == "none"`` it performs
        exactly the operations of ``DecoupledMLP.step`` in the same order.
        """
        s, u = self.setup, self.unlocking
        depth = self.model.depth
        self.model.train()
        context = s.context(y)
        fires = [True] * (depth + 1) if u.p == 1 else \
            (torch.rand(depth + 1, generator=self._coins) < u.p).tolist()
        self.steps += 1
        self.updates = [n + bool(f) for n, f in zip(self.updates, fires)]
        metrics: dict[str, float] = {}
        h: Tensor = x
        outputs: list[Tensor] = []                   # what each layer sent up (synthesizer inputs)
        for layer in range(depth + 1):
            is_output = layer == depth
            if layer in self.inputs:                 # forward unlocking
                synthetic = self.inputs[layer](x)
                metrics[f"input_err/L{layer + 1}"] = relative_error(synthetic, h)
                self._regress_input(layer, x, h.detach())
                h_in = synthetic.detach().requires_grad_(True)
            else:
                h_in = h
            iface = None if is_output else s.interfaces[layer]
            mode = None if is_output else s.modes[layer]
            result = layer_step(s.stage_modules[layer], s.optimizers[layer] if fires[layer] else None,
                                h_in, interface=iface, context=context if mode == "cdni" else None,
                                y=y if is_output else None, send_gradient=layer > 0)
            if layer > 0:                            # the target for the synthesizer below
                below = layer - 1
                loss = self._regress_synthesizer(below, outputs[below], context, result.grad_in)
                if loss is not None:
                    metrics[f"synth_loss/L{below + 1}"] = loss
            if result.loss is not None:
                metrics["train_loss"] = result.loss
            h = result.h_out
            if h is not None:
                outputs.append(h.detach())
        return metrics

    def _regress_synthesizer(self, k: int, h: Tensor, context: Tensor,
                             target: Tensor) -> float | None:
        s, d = self.setup, self.unlocking.delay
        iface, opt = s.interfaces[k], s.synth_optimizers[k]
        # the target comes from layer k + 1: bootstrapped unless that is the output layer
        target = regression_target(target, k + 1 < self.model.depth, s.ablation)
        if d == 0:
            return synthesizer_step(iface, opt, target)
        ctx = context if s.modes[k] == "cdni" else None
        queue = self._targets[k]
        queue.append((h, ctx, target.detach()))
        if len(queue) <= d:
            return None                               # nothing has arrived yet
        h_old, ctx_old, target_old = queue.popleft()
        return stale_synthesizer_step(iface.synthesizer, opt, h_old, ctx_old, target_old)

    def _regress_input(self, layer: int, x: Tensor, real: Tensor) -> None:
        queue = self._real_inputs[layer]
        queue.append((x, real))
        if len(queue) <= self.unlocking.delay:
            return
        x_old, real_old = queue.popleft()
        input_step(self.inputs[layer], self.input_optimizers[layer], x_old, real_old)


@dataclass(frozen=True)
class UnlockSettings(MLPBaseSettings):
    """The MLP, synthesizers and synthetic-input models of notebook 04's experiments.

    ``method``: every boundary is ``"dni"`` or ``"cdni"``; ``input_kind``,
    ``input_hidden``, ``input_lr``: the synthetic-input models. The other
    fields are ``mlp.MLPBaseSettings``'.
    """

    synth_lr: float = 1e-3
    epochs: int = 10
    method: str = "cdni"
    input_kind: str = "mlp"
    input_hidden: int = 256
    input_lr: float = 3e-3

    def validate(self) -> None:
        super().validate()
        check_choice("method", self.method, SG_METHODS)
        check_choice("input_kind", self.input_kind, KINDS)
        check_int("input_hidden", self.input_hidden, 1, 4096)
        check_float("input_lr", self.input_lr, 0.0, 1.0, low_open=True)


def compare_unlocked(variants: dict[str, Unlocking | None], settings: UnlockSettings | None = None,
                     **overrides) -> Iterator[Row]:
    """Train several unlocked variants of one MLP side by side, as ``compare_mlp`` does.

    ``variants`` maps a name to an ``Unlocking``, to ``None`` (the no-backprop
    baseline in which only the output layer learns) or to ``BACKPROP``. Initial
    weights, synthesizer initialisation and batch order are those of
    ``compare_mlp`` for the same seed, so ``Unlocking()`` (p=1, no delay,
    forward-locked) reproduces its DNI/cDNI copy exactly. Every ``log_every``
    steps it yields ``acc/<name>``, ``train_loss/<name>`` and, per boundary or
    layer, ``synth_loss/<name>/Lk`` and ``input_err/<name>/Lk`` (means since
    the last row). Returns a ``Result``.
    """
    if not isinstance(variants, dict) or not variants:
        raise ValueError("variants must map at least one name to an Unlocking or None")
    for name, v in variants.items():
        if v is not None and v != BACKPROP and not isinstance(v, Unlocking):
            raise ValueError(f"variants[{name!r}] must be an Unlocking, None or BACKPROP, got {v!r}")
    s = UnlockSettings.build(settings, **overrides)
    data = load_dataset(s.dataset, seed=s.seed, n_train=s.n_train)

    with seeded(s.seed):                          # the same draws as compare_mlp
        init = MLP(data.in_dim, data.n_classes, s.depth, s.width, s.batchnorm)
    trainers: dict[str, object] = {}
    for name, unlocking in variants.items():
        with seeded(s.seed + 1):
            if unlocking is None:
                mode, ablation = "none", s.ablation
            elif unlocking == BACKPROP:
                mode, ablation = "backprop", s.ablation
            else:
                mode = s.method
                ablation = s.ablation if unlocking.ablation is None else unlocking.ablation
            setup = DecoupledMLP(copy.deepcopy(init), [mode] * s.depth, data.n_classes, kind=s.kind,
                                 hidden_dim=s.synth_hidden, lr=s.lr, synth_lr=s.synth_lr,
                                 ablation=ablation, seed=s.seed)
            trainers[name] = setup if mode != s.method else UnlockedMLP(
                setup, unlocking, input_kind=s.input_kind, input_hidden=s.input_hidden,
                input_lr=s.input_lr, seed=s.seed)

    result: Result = yield from lockstep_epochs(trainers, data, s)   # compare_mlp's batches
    return result


# -- notebook 04's three experiments (thin wrappers around compare_unlocked) ----------

@dataclass(frozen=True)
class StochasticSettings(UnlockSettings):
    """``p``: the probability that a layer updates at a step."""

    p: float = 0.2

    def validate(self) -> None:
        super().validate()
        check_float("p", self.p, 0.0, 1.0)


def stochastic_updates(settings: StochasticSettings | None = None, **overrides) -> Iterator[Row]:
    """Every layer updates with probability ``p`` per step (``"stochastic"``), next to the
    same network updating every step (``"every_step"``), backprop, the no-backprop baseline
    and the control ``"stochastic_no_bootstrap"`` (the synthesizers below the top regress on
    zero, so the layers under the top hidden one get no signal)."""
    s = StochasticSettings.build(settings, **overrides)
    return compare_unlocked({"backprop": BACKPROP, "no_backprop": None, "every_step": Unlocking(),
                             "stochastic": Unlocking(p=s.p),
                             "stochastic_no_bootstrap": Unlocking(p=s.p, ablation="no_bootstrap")}, s)


@dataclass(frozen=True)
class StalenessSettings(UnlockSettings):
    """``delay``: steps late at which targets arrive; ``forward_unlock``: real inputs too.

    The layers learn at 1e-3 here (3e-4 elsewhere): a network that moves further per step
    has moved further by the time a late target arrives, which is what this experiment shows.
    """

    lr: float = 1e-3
    delay: int = 16
    forward_unlock: bool = False

    def validate(self) -> None:
        super().validate()
        check_int("delay", self.delay, 0, 1000)
        check_bool("forward_unlock", self.forward_unlock)


def staleness(settings: StalenessSettings | None = None, **overrides) -> Iterator[Row]:
    """Synthesizer targets (and, with ``forward_unlock``, real inputs) arriving
    0, ``delay // 4`` and ``delay`` steps late: variants ``"d0"``, ``"d_quarter"``, ``"d_full"``,
    beside the no-backprop baseline (the guard that ``d0`` learns at all)."""
    s = StalenessSettings.build(settings, **overrides)
    forward = "all" if s.forward_unlock else "none"
    return compare_unlocked({"no_backprop": None, "d0": Unlocking(forward=forward),
                             "d_quarter": Unlocking(delay=s.delay // 4, forward=forward),
                             "d_full": Unlocking(delay=s.delay, forward=forward)}, s)


@dataclass(frozen=True)
class CompleteUnlockingSettings(UnlockSettings):
    """``forward``: which layers run on synthetic inputs; ``p``: update probability."""

    forward: str = "all"
    p: float = 1.0

    def validate(self) -> None:
        super().validate()
        check_choice("forward", self.forward, FORWARD_UNLOCK)
        check_float("p", self.p, 0.0, 1.0)


def complete_unlocking(settings: CompleteUnlockingSettings | None = None, **overrides
                       ) -> Iterator[Row]:
    """Synthetic inputs for the layers ``forward`` picks, plus synthetic gradients everywhere
    (``"unlocked"``), next to the forward-locked DNI network (``"update_decoupled"``, i.e. p=1),
    backprop and the no-backprop baseline."""
    s = CompleteUnlockingSettings.build(settings, **overrides)
    return compare_unlocked({"backprop": BACKPROP, "no_backprop": None,
                             "update_decoupled": Unlocking(p=s.p),
                             "unlocked": Unlocking(p=s.p, forward=s.forward)}, s)
