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

from collections import deque
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .data import DATASETS, Dataset, load_dataset, minibatch_indices
from .diagnostics import relative_error
from .experiment import run_to_end  # noqa: F401  (re-exported for the notebooks)
from .interface import DecoupledInterface
from .mlp import MLP, DecoupledMLP, accuracy, layer_step, synthesizer_step
from .synthesizer import KINDS
from .validate import check_bool, check_choice, check_float, check_int

FORWARD_UNLOCK = ("none", "top", "all")
CONTEXTS = ("dni", "cdni")


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


def stale_synthesizer_step(interface: DecoupledInterface, optimizer: torch.optim.Optimizer,
                           h: Tensor, context: Tensor | None, target: Tensor) -> float:
    """Regress a synthesizer on an old pair: its prediction for ``h`` (now) toward ``target``.

    ``target`` is a raw dL/dh of a batch-mean loss, as in ``synthesizer_loss``.
    """
    optimizer.zero_grad(set_to_none=True)
    prediction = interface.synthesizer(h, context)
    loss = F.mse_loss(prediction, target.detach() * h.shape[0])
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@dataclass(frozen=True)
class Unlocking:
    """How unlocked a decoupled MLP trains.

    ``p``: probability that a layer updates at a step; ``delay``: steps late at
    which synthesizer targets and real inputs arrive; ``forward``: which layers
    run on synthetic inputs (``"none"``, ``"top"`` = the output layer, ``"all"``
    layers above the first).
    """

    p: float = 1.0
    delay: int = 0
    forward: str = "none"

    def __post_init__(self) -> None:
        check_float("p", self.p, 0.0, 1.0)
        check_int("delay", self.delay, 0, 1000)
        check_choice("forward", self.forward, FORWARD_UNLOCK)


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
        if any(mode not in CONTEXTS for mode in setup.modes):
            raise ValueError(f"every boundary must be one of {list(CONTEXTS)}, got {setup.modes}")
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
        context = F.one_hot(y, s.n_classes).float()
        fires = [True] * (depth + 1) if u.p == 1 else \
            (torch.rand(depth + 1, generator=self._coins) < u.p).tolist()
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
                metrics["loss"] = result.loss
            h = result.h_out
            if h is not None:
                outputs.append(h.detach())
        return metrics

    def _regress_synthesizer(self, k: int, h: Tensor, context: Tensor,
                             target: Tensor) -> float | None:
        s, d = self.setup, self.unlocking.delay
        iface, opt = s.interfaces[k], s.synth_optimizers[k]
        if d == 0:
            return synthesizer_step(iface, opt, target)
        ctx = context if s.modes[k] == "cdni" else None
        queue = self._targets[k]
        queue.append((h, ctx, target.detach()))
        if len(queue) <= d:
            return None                               # nothing has arrived yet
        h_old, ctx_old, target_old = queue.popleft()
        return stale_synthesizer_step(iface, opt, h_old, ctx_old, target_old)

    def _regress_input(self, layer: int, x: Tensor, real: Tensor) -> None:
        queue = self._real_inputs[layer]
        queue.append((x, real))
        if len(queue) <= self.unlocking.delay:
            return
        x_old, real_old = queue.popleft()
        input_step(self.inputs[layer], self.input_optimizers[layer], x_old, real_old)


@dataclass
class UnlockResult:
    """Final test accuracies (percent) and the trained variants of ``compare_unlocked``."""

    accuracy: dict[str, float]
    variants: dict[str, object] = field(repr=False)


def compare_unlocked(variants: dict[str, Unlocking | None], dataset: str = "mnist1d",
                     depth: int = 3, width: int = 256, context: str = "cdni", kind: str = "linear",
                     synth_hidden: int = 256, lr: float = 1e-3, synth_lr: float = 1e-3,
                     input_kind: str = "mlp", input_hidden: int = 256, input_lr: float = 3e-3,
                     batch_size: int = 128, epochs: int = 10, seed: int = 0,
                     batchnorm: bool = True, log_every: int = 20, n_train: int | None = None
                     ) -> Iterator[dict[str, float]]:
    """Train several unlocked variants of one MLP side by side, as ``compare_mlp`` does.

    ``variants`` maps a name to an ``Unlocking`` (or to ``None``: the
    no-backprop baseline in which only the output layer learns). Initial
    weights, synthesizer initialisation and batch order are those of
    ``compare_mlp`` for the same seed, so ``Unlocking()`` (p=1, no delay,
    forward-locked) reproduces its DNI/cDNI copy exactly. Every ``log_every``
    steps it yields ``acc/<name>``, ``loss/<name>`` and, per boundary or
    layer, ``synth_loss/<name>/Lk`` and ``input_err/<name>/Lk`` (means since
    the last row). Returns an ``UnlockResult``.
    """
    if not isinstance(variants, dict) or not variants:
        raise ValueError("variants must map at least one name to an Unlocking or None")
    for name, v in variants.items():
        if v is not None and not isinstance(v, Unlocking):
            raise ValueError(f"variants[{name!r}] must be an Unlocking or None, got {v!r}")
    check_choice("dataset", dataset, DATASETS)
    check_int("depth", depth, 1, 16)
    check_int("width", width, 1, 4096)
    check_choice("context", context, CONTEXTS)
    check_choice("kind", kind, KINDS)
    check_int("synth_hidden", synth_hidden, 1, 4096)
    check_float("lr", lr, 0.0, 1.0, low_open=True)
    check_float("synth_lr", synth_lr, 0.0, 1.0, low_open=True)
    check_choice("input_kind", input_kind, KINDS)
    check_int("input_hidden", input_hidden, 1, 4096)
    check_float("input_lr", input_lr, 0.0, 1.0, low_open=True)
    check_int("batch_size", batch_size, 2)
    check_int("epochs", epochs, 1)
    check_int("seed", seed, 0)
    check_bool("batchnorm", batchnorm)
    check_int("log_every", log_every, 1)
    data: Dataset = load_dataset(dataset, seed=seed, n_train=n_train)

    torch.manual_seed(seed)                       # the same draws as compare_mlp
    init = MLP(data.in_dim, data.n_classes, depth, width, batchnorm).state_dict()
    trainers: dict[str, object] = {}
    for name, unlocking in variants.items():
        model = MLP(data.in_dim, data.n_classes, depth, width, batchnorm)
        model.load_state_dict(init)
        torch.manual_seed(seed + 1)
        modes = ["none"] * depth if unlocking is None else [context] * depth
        setup = DecoupledMLP(model, modes, data.n_classes, kind=kind, hidden_dim=synth_hidden,
                             lr=lr, synth_lr=synth_lr)
        trainers[name] = setup if unlocking is None else UnlockedMLP(
            setup, unlocking, input_kind=input_kind, input_hidden=input_hidden,
            input_lr=input_lr, seed=seed)

    n = data.x.shape[0]
    batches = minibatch_indices(n, batch_size, torch.Generator().manual_seed(seed + 2))
    steps_per_epoch = max(1, n // batch_size)       # the same batches as compare_mlp
    total = epochs * steps_per_epoch
    window: dict[str, list[dict[str, float]]] = {name: [] for name in trainers}
    for step in range(1, total + 1):
        idx = next(batches)
        x, y = data.x[idx], data.y[idx]
        for name, trainer in trainers.items():
            window[name].append(trainer.step(x, y))
        if step % log_every == 0 or step == total:
            row: dict[str, float] = {"step": step, "epoch": step / steps_per_epoch}
            for name, trainer in trainers.items():
                row[f"acc/{name}"] = accuracy(trainer.model, data.x_test, data.y_test)
                rows = window[name]
                for key in sorted({k for r in rows for k in r}):
                    values = [r[key] for r in rows if key in r]
                    head, _, tail = key.partition("/")
                    row[f"{head}/{name}/{tail}" if tail else f"{head}/{name}"] = \
                        sum(values) / len(values)
                rows.clear()
            yield row
    return UnlockResult({name: accuracy(t.model, data.x_test, data.y_test)
                         for name, t in trainers.items()}, trainers)


# -- notebook 04's three experiments (thin wrappers around compare_unlocked) ----------

def stochastic_updates(p: float = 0.2, **settings) -> Iterator[dict[str, float]]:
    """Every layer updates with probability ``p`` per step (``"stochastic"``), next to the
    same network updating every step (``"every_step"``) and the no-backprop baseline."""
    check_float("p", p, 0.0, 1.0)
    return compare_unlocked({"no_backprop": None, "every_step": Unlocking(),
                             "stochastic": Unlocking(p=p)}, **settings)


def staleness(delay: int = 16, forward_unlock: bool = False, **settings
              ) -> Iterator[dict[str, float]]:
    """Synthesizer targets (and, with ``forward_unlock``, real inputs) arriving
    0, ``delay // 4`` and ``delay`` steps late: variants ``"d0"``, ``"d_quarter"``, ``"d_full"``."""
    check_int("delay", delay, 0, 1000)
    check_bool("forward_unlock", forward_unlock)
    forward = "all" if forward_unlock else "none"
    return compare_unlocked({"d0": Unlocking(forward=forward),
                             "d_quarter": Unlocking(delay=delay // 4, forward=forward),
                             "d_full": Unlocking(delay=delay, forward=forward)}, **settings)


def complete_unlocking(forward: str = "all", p: float = 1.0, **settings
                       ) -> Iterator[dict[str, float]]:
    """Synthetic inputs for the layers ``forward`` picks, plus synthetic gradients everywhere
    (``"unlocked"``), next to the forward-locked DNI network (``"update_decoupled"``) and the
    no-backprop baseline."""
    check_choice("forward", forward, FORWARD_UNLOCK)
    check_float("p", p, 0.0, 1.0)
    return compare_unlocked({"no_backprop": None, "update_decoupled": Unlocking(p=p),
                             "unlocked": Unlocking(p=p, forward=forward)}, **settings)
