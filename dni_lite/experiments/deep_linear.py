"""Notebook 02's experiments: deep linear networks with decoupled interfaces.

A deep linear network is a stack of ``nn.Linear`` layers with nothing in
between. It can only represent a linear map, yet its training dynamics are
non-linear (Saxe et al. 2014), which is why Czarnecki et al. (2017) use it to
study synthetic gradients: their convergence results cover it.

Cut k sits after layer k. Every training step here goes through
``train_step``, which puts a ``DecoupledInterface`` at each chosen cut:

* no interfaces: plain backprop;
* one learned synthesizer in the middle: DNI or cDNI (section 1);
* ``lam`` between 0 and 1: BP(lambda) (section 3);
* a learned or fixed synthesizer at every cut: DNI, cDNI, FA, DFA, Kickback
  (sections 2 and 4; fixed ones come from feedback.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.datasets import digits_arrays, sampled_batches
from ..diagnostics import accuracy, cosine_similarity
from ..feedback import FIXED_METHODS, fixed_synthesizers
from ..interface import (ABLATIONS, DecoupledInterface, check_controls, context_shuffler,
                         control_name, regression_target, shuffle_rows, synthetic_gradient)
from ..runner import Result, Row, Settings, lockstep, seeded
from ..synthesizer import KINDS, Synthesizer
from ..validate import check_bool, check_choice, check_float, check_int
from .linear import make_regression, squared_loss

LossFn = Callable[[Tensor, Tensor], Tensor]
# the learning signal of the layers below the last: "no_backprop" = none (they never learn)
METHODS = ("backprop", "dni", "cdni", "fa", "dfa", "kickback", "no_backprop")
SIGNALS = ("dni", "cdni", "fa", "dfa", "kickback")


class DeepLinearNet(nn.Module):
    """``depth`` linear layers: ``in_dim -> width -> ... -> width -> out_dim``.

    Weights start Gaussian with standard deviation ``1/sqrt(fan_in)`` (so the
    signal keeps its size through the stack), biases at zero.
    """

    def __init__(self, in_dim: int, width: int, out_dim: int, depth: int) -> None:
        super().__init__()
        check_int("in_dim", in_dim, 1)
        check_int("width", width, 1)
        check_int("out_dim", out_dim, 1)
        check_int("depth", depth, 1)
        dims = [in_dim] + [width] * (depth - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        for layer in self.layers:
            nn.init.normal_(layer.weight, std=layer.in_features ** -0.5)
            nn.init.zeros_(layer.bias)

    @property
    def depth(self) -> int:
        return len(self.layers)

    @property
    def weights(self) -> list[Tensor]:
        return [layer.weight for layer in self.layers]

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def activations(self, x: Tensor) -> list[Tensor]:
        """The output of every hidden layer (cut 1 .. depth-1), without gradients."""
        hs = []
        with torch.no_grad():
            for layer in self.layers[:-1]:
                x = layer(x)
                hs.append(x)
        return hs


# --- one training step through any set of interfaces ---------------------------------------

def true_signals(net: DeepLinearNet, x: Tensor, y: Tensor, loss_fn: LossFn,
                 cuts: Sequence[int]) -> tuple[dict[int, Tensor], Tensor]:
    """Backprop's dL/dh at each cut and the per-example output error ``e``.

    A read-out (and the context of FA/DFA/Kickback): computed with the current
    weights, it touches no ``.grad``.
    """
    hs, h = {}, x
    for k, layer in enumerate(net.layers, start=1):
        h = layer(h)
        if k in cuts:
            hs[k] = h
    out = h
    grads = torch.autograd.grad(loss_fn(out, y), [out] + [hs[k] for k in cuts])
    return dict(zip(cuts, grads[1:])), grads[0] * x.shape[0]


def train_step(net: DeepLinearNet, interfaces: dict[int, DecoupledInterface],
               opt: torch.optim.Optimizer, synth_opt: torch.optim.Optimizer | None,
               x: Tensor, y: Tensor, loss_fn: LossFn, label: Tensor,
               measure: bool = True, ablation: str = "none") -> dict[str, float]:
    """One step of ``net`` with a ``DecoupledInterface`` at each cut in ``interfaces``.

    Interfaces with ``lam == 0`` push their signal into the layer below at once
    (update unlocking); those with ``lam > 0`` wait for the gradient from above
    and go top-down after the loss. A learned synthesizer's context is
    ``label``; a fixed one (FA/DFA/Kickback) gets the output error.
    ``ablation="no_bootstrap"`` makes every learned synthesizer but the topmost
    regress on zero (their targets are bootstrapped; see ``interface``).
    Returns the loss, the synthesizers' regression loss and, when ``measure``,
    the mean cosine between each cut's signal and backprop's gradient there
    (a read-out that costs an extra forward and backward pass).
    """
    cuts = sorted(interfaces)
    needs_error = any(getattr(i.synthesizer, "uses_error", False) for i in interfaces.values())
    true, error = true_signals(net, x, y, loss_fn, cuts) if (measure or needs_error) else ({}, None)
    opt.zero_grad()
    if synth_opt is not None:
        synth_opt.zero_grad()
    signals: dict[int, Tensor] = {}
    h = x
    for k, layer in enumerate(net.layers, start=1):
        h = layer(h)
        if k in interfaces:
            iface = interfaces[k]
            synth = iface.synthesizer
            context = error if getattr(synth, "uses_error", False) else (
                label if synth.context_dim else None)
            h = iface(h, context)
            if iface.lam == 0:
                signals[k] = iface.backward()
    loss = loss_fn(h, y)
    loss.backward()
    for k in reversed(cuts):
        if interfaces[k].lam > 0:
            signals[k] = interfaces[k].backward()
    opt.step()
    row = {"loss": float(loss.detach())}
    if cuts and true:
        row["cosine"] = sum(cosine_similarity(signals[k], true[k]) for k in cuts) / len(cuts)
    learned = [iface for iface in interfaces.values() if list(iface.synthesizer.parameters())]
    if learned and synth_opt is not None:
        top = max(k for k, iface in interfaces.items() if iface in learned)
        synth_loss = sum(
            iface.synthesizer_loss(regression_target(iface.received_gradient, k != top, ablation))
            for k, iface in interfaces.items() if iface in learned)
        synth_loss.backward()
        synth_opt.step()
        row["synth_loss"] = float(synth_loss.detach())
    return row


def _learned_interface(width: int, context_dim: int, kind: str, zero_init: bool,
                       lam: float, ablation: str) -> DecoupledInterface:
    return DecoupledInterface(Synthesizer(width, context_dim=context_dim, kind=kind,
                                          zero_init=zero_init), lam=lam,
                              zero_output=ablation == "zero_synthetic_gradient")


def _batches(data: "DigitsTask", s: Settings) -> Iterator[tuple[Tensor, Tensor]]:
    """Both tasks' minibatch stream: drawn with replacement, seeded by ``seed + 1``."""
    return sampled_batches(data.x, data.y, s.batch_size, torch.Generator().manual_seed(s.seed + 1))


def tail_mean(rows: Sequence[dict[str, float]], key: str, n: int = 10) -> float:
    """The mean of ``key`` over the last ``n`` logged rows (a less noisy "final" value)."""
    check_int("n", n, 1)
    tail = [r[key] for r in rows[-n:]]
    if not tail:
        raise ValueError("rows must hold at least one logged row")
    return sum(tail) / len(tail)


class DeepLinearTrainer:
    """One variant: a deep linear net, its interfaces (cut -> interface) and optimisers.

    ``step`` measures the cosine of each cut's signal to backprop's gradient
    every 5th step (a read-out that costs an extra forward and backward pass).
    ``ablation``: ``"shuffled_context"`` permutes the label across the batch
    before a synthesizer sees it; ``"no_bootstrap"``: see ``train_step``.
    """

    def __init__(self, model: DeepLinearNet, interfaces: dict[int, DecoupledInterface],
                 model_lr: float, synth_lr: float, loss_fn: LossFn, ablation: str = "none",
                 seed: int = 0) -> None:
        self.model, self.interfaces, self.loss_fn = model, interfaces, loss_fn
        self.ablation, self.shuffle = ablation, context_shuffler(ablation, seed)
        self.initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        trainable = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.SGD(trainable, lr=model_lr)
        params = [p for iface in interfaces.values() for p in iface.synthesizer.parameters()]
        self.synth_opt = torch.optim.SGD(params, lr=synth_lr) if params else None
        self.steps = 0

    def step(self, x: Tensor, y: Tensor) -> Row:
        self.steps += 1
        row = train_step(self.model, self.interfaces, self.opt, self.synth_opt, x, y,
                         self.loss_fn, shuffle_rows(y, self.shuffle),
                         measure=self.steps % 5 == 0, ablation=self.ablation)
        return {"cos": row["cosine"]} if "cosine" in row else {}


def lower_movement(trainer: DeepLinearTrainer, cut: int) -> float:
    """How far the layers below ``cut`` moved from their initial weights (relative Frobenius norm)."""
    moved = total = 0.0
    for k in range(cut):
        w, w0 = trainer.model.layers[k].weight.detach(), trainer.initial[f"layers.{k}.weight"]
        moved += float((w - w0).pow(2).sum())
        total += float(w0.pow(2).sum())
    return (moved / total) ** 0.5


def prediction_ratio(trainer: DeepLinearTrainer, x: Tensor, y: Tensor, loss_fn: LossFn) -> float:
    """``||synthetic|| / ||true||`` at the interfaces on ``(x, y)``: near 0 when the synthesizers
    predict (almost) nothing."""
    cuts = sorted(trainer.interfaces)
    true, _ = true_signals(trainer.model, x, y, loss_fn, cuts)
    hs = trainer.model.activations(x)
    synths = {k: trainer.interfaces[k].synthesizer for k in cuts}
    synthetic = sum(float(synthetic_gradient(synths[k], hs[k - 1],
                                             y if synths[k].context_dim else None).norm())
                    for k in cuts)
    return synthetic / max(sum(float(true[k].norm()) for k in cuts), 1e-12)


# --- section 1 and 3: regression with one interface in the middle ---------------------------

@dataclass(frozen=True)
class DeepLinearSettings(Settings):
    """Backprop next to DNI/cDNI with one interface at the middle cut of a deep linear net.

    ``variants``: ``"dni"``, ``"cdni"``, ``"both"`` or ``"none"``; they mix
    in the true gradient with weight ``lam``. Each value in ``sweep`` adds a
    BP(lambda) copy ``lam=<value>`` whose synthesizer is ``sweep_variant``'s.
    ``ablation``: ``"zero_synthetic_gradient"`` or ``"shuffled_context"`` in
    every copy with a synthesizer (see ``interface``). ``controls``:
    ``(variant, ablation)`` pairs, each a copy of that variant with one piece of
    the mechanism switched off (``dni_zero_sg``: its lower half never moves).
    """

    depth: int = 10
    width: int = 10
    model_lr: float = 0.02
    synth_lr: float = 0.1
    variants: str = "both"
    zero_init: bool = True
    lam: float = 0.0
    sweep: tuple[float, ...] = ()
    sweep_variant: str = "dni"
    steps: int = 800
    batch_size: int = 32
    noise: float = 0.5
    seed: int = 0
    log_every: int = 20
    ablation: str = "none"
    controls: tuple[tuple[str, str], ...] = (("dni", "zero_synthetic_gradient"),)

    def validate(self) -> None:
        check_int("depth", self.depth, 2, 30)
        check_int("width", self.width, 1)
        check_float("model_lr", self.model_lr, 0.0, low_open=True)
        check_float("synth_lr", self.synth_lr, 0.0, low_open=True)
        check_choice("variants", self.variants, ("dni", "cdni", "both", "none"))
        check_bool("zero_init", self.zero_init)
        check_float("lam", self.lam, 0.0, 1.0)
        if not isinstance(self.sweep, tuple):
            raise ValueError(f"sweep must be a tuple of values in [0, 1], got {self.sweep!r}")
        for v in self.sweep:
            check_float("sweep value", v, 0.0, 1.0)
        check_choice("sweep_variant", self.sweep_variant, ("dni", "cdni"))
        check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_float("noise", self.noise, 0.0)
        check_int("seed", self.seed, 0)
        check_int("log_every", self.log_every, 1)
        check_choice("ablation", self.ablation, ABLATIONS[:3])
        check_controls(self.controls, ("dni", "cdni"), ABLATIONS[1:3])


def compare_deep_linear(settings: DeepLinearSettings | None = None, **overrides) -> Iterator[Row]:
    """Train the variants side by side on notebook 01's regression task ``y = A x + noise``.

    All copies start from the same weights and see the same batches. Yields
    the test loss of every copy (``test_loss/<name>``) and the mean cosine
    between the signal at the cut and backprop's gradient (``cos/<name>``,
    every 5th step). Returns a ``Result`` whose ``data`` is the task.
    """
    s = DeepLinearSettings.build(settings, **overrides)
    data = make_regression(noise=s.noise, seed=s.seed)
    in_dim, out_dim = data.x.shape[1], data.y.shape[1]
    cut = s.depth // 2

    # name -> (synthesizer, lambda, ablation)
    variants: dict[str, tuple[str, float, str]] = {"backprop": ("none", 0.0, "none")}
    if s.variants in ("dni", "both"):
        variants["dni"] = ("dni", s.lam, s.ablation)
    if s.variants in ("cdni", "both"):
        variants["cdni"] = ("cdni", s.lam, s.ablation)
    for value in s.sweep:
        variants[f"lam={value:g}"] = (s.sweep_variant, value, s.ablation)
    for variant, ablation in s.controls:
        variants[control_name(variant, ablation)] = (variant, s.lam, ablation)

    trainers = {}
    with seeded(s.seed):       # each copy is built afresh, then given the shared initial weights
        init = DeepLinearNet(in_dim, s.width, out_dim, s.depth).state_dict()
        for name, (kind, mix, ablation) in variants.items():
            net = DeepLinearNet(in_dim, s.width, out_dim, s.depth)
            net.load_state_dict(init)
            ifaces = {} if kind == "none" else {
                cut: _learned_interface(s.width, out_dim if kind == "cdni" else 0, "linear",
                                        s.zero_init, mix, ablation)}
            trainers[name] = DeepLinearTrainer(net, ifaces, s.model_lr, s.synth_lr, squared_loss,
                                               ablation, s.seed)

    def test_loss(name: str, trainer: DeepLinearTrainer) -> Row:
        with torch.no_grad():
            return {"test_loss": float(squared_loss(trainer.model(data.x_test), data.y_test))}

    result: Result = yield from lockstep(trainers, _batches(data, s),
                                         s.steps, s.log_every, test_loss, data=data, settings=s)
    return result


# --- sections 2 and 4: a small classification task, an interface at every cut ----------------

@dataclass
class DigitsTask:
    """scikit-learn's 8x8 digits (shipped offline), standardised; target: digit >= 5."""

    x: Tensor
    y: Tensor
    x_test: Tensor
    y_test: Tensor
    digit: Tensor
    digit_test: Tensor


def make_digits(n_test: int = 497) -> DigitsTask:
    """The 1797 digits split once (fixed permutation) into train and test.

    The target is binary, "is the digit 5 or more?", one logit: Kickback was
    designed for a single output error. The split is notebook 02's own (a
    fixed permutation, not ``load_dataset("digits")``'s seeded 80/20 one), so
    its calibrated numbers stay put. ``digit`` keeps the 10-class label for probes.
    """
    check_int("n_test", n_test, 1, 1000)
    pixels, labels = digits_arrays()
    x = torch.tensor(pixels, dtype=torch.float32)
    digit = torch.tensor(labels)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, digit = x[perm], digit[perm]
    n_train = len(x) - n_test
    mean, std = x[:n_train].mean(0), x[:n_train].std(0) + 1.0
    x = (x - mean) / std
    y = (digit >= 5).float().unsqueeze(1)
    return DigitsTask(x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                      digit[:n_train], digit[n_train:])


def logistic_loss(logit: Tensor, target: Tensor) -> Tensor:
    """Binary cross-entropy of one logit, averaged over the batch."""
    return F.binary_cross_entropy_with_logits(logit, target)


@dataclass(frozen=True)
class MethodsSettings(Settings):
    """Copies of one deep linear classifier, each with a different learning signal.

    ``method``: one of ``SIGNALS`` or ``"all"``; backprop and ``"no_backprop"``
    always run alongside. ``dni_synthesizer`` is the kind of DNI's
    synthesizers, trained with ``dni_synth_lr`` (``None``: ``synth_lr``).
    ``ablation``: any of ``interface.ABLATIONS``, in every copy with interfaces.
    """

    method: str = "all"
    depth: int = 4
    width: int = 8
    model_lr: float = 0.05
    synth_lr: float = 0.2
    dni_synthesizer: str = "linear"
    dni_synth_lr: float | None = None
    steps: int = 800
    batch_size: int = 32
    seed: int = 0
    log_every: int = 20
    ablation: str = "none"

    def validate(self) -> None:
        check_choice("method", self.method, SIGNALS + ("all",))
        check_int("depth", self.depth, 2, 12)
        check_int("width", self.width, 1)
        check_float("model_lr", self.model_lr, 0.0, low_open=True)
        check_float("synth_lr", self.synth_lr, 0.0, low_open=True)
        check_choice("dni_synthesizer", self.dni_synthesizer, KINDS)
        if self.dni_synth_lr is not None:
            check_float("dni_synth_lr", self.dni_synth_lr, 0.0, low_open=True)
        check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("seed", self.seed, 0)
        check_int("log_every", self.log_every, 1)
        check_choice("ablation", self.ablation, ABLATIONS)


def compare_methods(settings: MethodsSettings | None = None, **overrides) -> Iterator[Row]:
    """Backprop, no-backprop and the chosen signals on the digits task, side by side.

    Every copy has an interface at every cut (so every layer but the last
    learns from its interface's signal) and starts from the same weights on
    the same batches. Without the label, a linear DNI synthesizer predicts ~0
    once the last layer is the best linear read-out of ``h``; an MLP one can
    still fit the non-linear part of E[dL/dh | h]. Yields test accuracy in
    percent (``acc/<name>``) and the mean cosine between each copy's signals and
    backprop's gradients (``cos/<name>``). Returns a ``Result`` (``data``: the task).
    """
    s = MethodsSettings.build(settings, **overrides)
    dni_synth_lr = s.synth_lr if s.dni_synth_lr is None else s.dni_synth_lr
    data = make_digits()
    in_dim = data.x.shape[1]
    names = ["backprop", "no_backprop"] + (list(SIGNALS) if s.method == "all" else [s.method])
    cuts = list(range(1, s.depth))

    trainers = {}
    with seeded(s.seed):       # each copy is built afresh, then given the shared initial weights
        init = DeepLinearNet(in_dim, s.width, 1, s.depth).state_dict()
        for name in names:
            net = DeepLinearNet(in_dim, s.width, 1, s.depth)
            net.load_state_dict(init)
            if name == "no_backprop":
                for layer in net.layers[:-1]:
                    layer.requires_grad_(False)
            if name in ("dni", "cdni"):
                kind = s.dni_synthesizer if name == "dni" else "linear"
                ifaces = {k: _learned_interface(s.width, 1 if name == "cdni" else 0, kind,
                                                True, 0.0, s.ablation) for k in cuts}
            elif name in FIXED_METHODS:
                fixed = fixed_synthesizers(name, net.weights, cuts, seed=s.seed + 3)
                ifaces = {k: DecoupledInterface(f, zero_output=s.ablation == "zero_synthetic_gradient")
                          for k, f in fixed.items()}
            else:
                ifaces = {}
            lr = dni_synth_lr if name == "dni" else s.synth_lr
            trainers[name] = DeepLinearTrainer(net, ifaces, s.model_lr, lr, logistic_loss,
                                               s.ablation, s.seed)

    def test_accuracy(name: str, trainer: DeepLinearTrainer) -> Row:
        return {"acc": accuracy(trainer.model, data.x_test, data.y_test)}

    result: Result = yield from lockstep(trainers, _batches(data, s),
                                         s.steps, s.log_every, test_accuracy, data=data, settings=s)
    return result
