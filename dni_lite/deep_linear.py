"""Notebook 02's experiments: deep linear networks with decoupled interfaces.

A deep linear network is a stack of ``nn.Linear`` layers with nothing in
between. It can only represent a linear map, yet its training dynamics are
non-linear (Saxe et al. 2014), which is why Czarnecki et al. (2017) use it to
study synthetic gradients: their convergence results cover it.

Cut k sits after layer k. Every training step here goes through
``train_step``, which puts a ``DecoupledInterface`` at each chosen cut:

* no interfaces: plain backprop;
* one learned synthesizer in the middle: SG or cDNI (section 1);
* ``lam`` between 0 and 1: BP(lambda) (section 3);
* a learned or fixed synthesizer at every cut: SG, cDNI, FA, DFA, Kickback
  (sections 2 and 4; fixed ones come from feedback.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .diagnostics import cosine_similarity
from .feedback import FIXED_METHODS, fixed_synthesizers
from .interface import DecoupledInterface
from .linear import make_regression, squared_loss
from .synthesizer import Synthesizer
from .validate import check_bool, check_choice, check_float, check_int

LossFn = Callable[[Tensor, Tensor], Tensor]
METHODS = ("backprop", "sg", "cdni", "fa", "dfa", "kickback", "frozen")


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
               measure: bool = True) -> dict[str, float]:
    """One step of ``net`` with a ``DecoupledInterface`` at each cut in ``interfaces``.

    Interfaces with ``lam == 0`` push their signal into the layer below at once
    (update unlocking); those with ``lam > 0`` wait for the gradient from above
    and go top-down after the loss. A learned synthesizer's context is
    ``label``; a fixed one (FA/DFA/Kickback) gets the output error.
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
        synth_loss = sum(iface.synthesizer_loss() for iface in learned)
        synth_loss.backward()
        synth_opt.step()
        row["synth_loss"] = float(synth_loss.detach())
    return row


def _learned_interface(width: int, context_dim: int, kind: str, zero_init: bool,
                       lam: float) -> DecoupledInterface:
    return DecoupledInterface(Synthesizer(width, context_dim=context_dim, kind=kind,
                                          zero_init=zero_init), lam=lam)


def _synth_params(interfaces: dict[int, DecoupledInterface]) -> list[nn.Parameter]:
    return [p for iface in interfaces.values() for p in iface.synthesizer.parameters()]


def tail_mean(rows: Sequence[dict[str, float]], key: str, n: int = 10) -> float:
    """The mean of ``key`` over the last ``n`` logged rows (a less noisy "final" value)."""
    check_int("n", n, 1)
    tail = [r[key] for r in rows[-n:]]
    if not tail:
        raise ValueError("rows must hold at least one logged row")
    return sum(tail) / len(tail)


def _mean(rows: list[dict[str, float]], key: str) -> float:
    values = [r[key] for r in rows if key in r]
    return sum(values) / len(values) if values else float("nan")


# --- section 1 and 3: regression with one interface in the middle ---------------------------

def _lockstep(nets: dict[str, DeepLinearNet], ifaces: dict[str, dict[int, DecoupledInterface]],
              opts: dict[str, torch.optim.Optimizer],
              synth_opts: dict[str, torch.optim.Optimizer | None], x_train: Tensor,
              y_train: Tensor, loss_fn: LossFn,
              metric: tuple[str, Callable[[DeepLinearNet], float]], steps: int, batch_size: int, seed: int, log_every: int
              ) -> Iterator[dict[str, float]]:
    """Train every copy on the same random batches, one step each in turn.

    Every ``log_every`` steps it yields ``<metric>/<name>`` for every copy and,
    for copies with interfaces, the mean cosine of their signals to backprop's
    gradients (measured every 5th step) as ``cos/<name>``.
    """
    key, evaluate = metric
    g = torch.Generator().manual_seed(seed + 1)
    window: dict[str, list[dict[str, float]]] = {name: [] for name in nets}
    for step in range(1, steps + 1):
        idx = torch.randint(0, x_train.shape[0], (batch_size,), generator=g)
        x, y = x_train[idx], y_train[idx]
        for name in nets:
            window[name].append(train_step(nets[name], ifaces[name], opts[name],
                                           synth_opts[name], x, y, loss_fn, y,
                                           measure=step % 5 == 0))
        if step % log_every == 0 or step == steps:
            row: dict[str, float] = {"step": step}
            for name, net in nets.items():
                row[f"{key}/{name}"] = evaluate(net)
            for name, rows in window.items():
                if ifaces[name]:
                    row[f"cos/{name}"] = _mean(rows, "cosine")
                rows.clear()
            yield row


def compare_deep_linear(depth: int = 10, width: int = 10, model_lr: float = 0.02,
                        synth_lr: float = 0.1, context: str = "both", zero_init: bool = True,
                        lam: float = 0.0, sweep: Sequence[float] = (), sweep_context: str = "off",
                        steps: int = 800, batch_size: int = 32, noise: float = 0.5,
                        seed: int = 0, log_every: int = 20) -> Iterator[dict[str, float]]:
    """Backprop next to SG and/or cDNI with one interface at the middle cut.

    All copies start from the same weights and see the same batches of the
    generated regression task ``y = A x + noise`` (notebook 01's). ``context``
    picks the synthetic-gradient copies (``"off"``: SG, ``"on"``: cDNI,
    ``"both"``, ``"none"``), which mix in the true gradient with weight
    ``lam``; each value in ``sweep`` adds a BP(lambda) copy ``lam=<value>``
    whose synthesizer sees the label if ``sweep_context == "on"``. Yields the
    test loss of every copy (``loss/<name>``) and the mean cosine between the
    signal at the cut and backprop's gradient (``cos/<name>``, every 5th step).
    """
    check_int("depth", depth, 2, 30)
    check_int("width", width, 1)
    check_float("model_lr", model_lr, 0.0, low_open=True)
    check_float("synth_lr", synth_lr, 0.0, low_open=True)
    check_choice("context", context, ("off", "on", "both", "none"))
    check_bool("zero_init", zero_init)
    check_float("lam", lam, 0.0, 1.0)
    sweep = [check_float("sweep value", v, 0.0, 1.0) for v in sweep]
    check_choice("sweep_context", sweep_context, ("off", "on"))
    check_int("steps", steps, 1)
    check_int("batch_size", batch_size, 1)
    check_int("seed", seed, 0)
    check_int("log_every", log_every, 1)
    data = make_regression(noise=noise, seed=seed)
    in_dim, out_dim = data.x.shape[1], data.y.shape[1]
    cut = depth // 2

    variants: dict[str, tuple[str, float]] = {"backprop": ("none", 0.0)}
    if context in ("off", "both"):
        variants["sg"] = ("sg", lam)
    if context in ("on", "both"):
        variants["cdni"] = ("cdni", lam)
    for value in sweep:
        variants[f"lam={value:g}"] = ("cdni" if sweep_context == "on" else "sg", value)

    torch.manual_seed(seed)
    init = DeepLinearNet(in_dim, width, out_dim, depth).state_dict()
    nets, opts, ifaces, synth_opts = {}, {}, {}, {}
    for name, (kind, mix) in variants.items():
        nets[name] = DeepLinearNet(in_dim, width, out_dim, depth)
        nets[name].load_state_dict(init)
        opts[name] = torch.optim.SGD(nets[name].parameters(), lr=model_lr)
        ifaces[name] = {} if kind == "none" else {
            cut: _learned_interface(width, out_dim if kind == "cdni" else 0, "linear",
                                    zero_init, mix)}
        params = _synth_params(ifaces[name])
        synth_opts[name] = torch.optim.SGD(params, lr=synth_lr) if params else None

    def test_loss(net: DeepLinearNet) -> float:
        with torch.no_grad():
            return float(squared_loss(net(data.x_test), data.y_test))

    yield from _lockstep(nets, ifaces, opts, synth_opts, data.x, data.y, squared_loss,
                         ("loss", test_loss), steps, batch_size, seed, log_every)
    return {"nets": nets, "interfaces": ifaces, "data": data}


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
    designed for a single output error. ``digit`` keeps the 10-class label for probes.
    """
    check_int("n_test", n_test, 1, 1000)
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = torch.tensor(raw.data, dtype=torch.float32)
    digit = torch.tensor(raw.target)
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


def accuracy(net: DeepLinearNet, x: Tensor, y: Tensor) -> float:
    """Test accuracy of the logit's sign; NaN once the network has diverged (so a panel stops)."""
    with torch.no_grad():
        logit = net(x)
        if not torch.isfinite(logit).all():
            return float("nan")
        return float(((logit > 0).float() == y).float().mean())


def compare_methods(method: str = "all", depth: int = 4, width: int = 8, model_lr: float = 0.05,
                    synth_lr: float = 0.2, sg_synthesizer: str = "linear",
                    sg_synth_lr: float | None = None, steps: int = 800,
                    batch_size: int = 32, seed: int = 0,
                    log_every: int = 20) -> Iterator[dict[str, float]]:
    """Train copies of one deep linear classifier, each with a different learning signal.

    Every copy has an interface at every cut (so every layer but the last
    learns from its interface's signal) and starts from the same weights on
    the same batches. ``method`` is one of ``"sg"``, ``"cdni"``, ``"fa"``,
    ``"dfa"``, ``"kickback"`` or ``"all"``; backprop and ``"frozen"`` (only
    the last layer learns: the no-learning baseline for the lower layers)
    always run alongside. ``sg_synthesizer`` is the kind of SG's synthesizers
    (``"linear"`` or ``"mlp"``), trained with ``sg_synth_lr`` (default:
    ``synth_lr``): without the label, a linear one predicts ~0 once the last
    layer is the best linear read-out of ``h``; an MLP can still fit the
    non-linear part of E[dL/dh | h]. Yields test accuracy (``acc/<name>``) and
    the mean cosine between each copy's signals and backprop's gradients.
    """
    check_choice("method", method, METHODS[1:6] + ("all",))
    check_int("depth", depth, 2, 12)
    check_int("width", width, 1)
    check_float("model_lr", model_lr, 0.0, low_open=True)
    check_float("synth_lr", synth_lr, 0.0, low_open=True)
    check_choice("sg_synthesizer", sg_synthesizer, ("linear", "mlp"))
    sg_synth_lr = synth_lr if sg_synth_lr is None else check_float(
        "sg_synth_lr", sg_synth_lr, 0.0, low_open=True)
    check_int("steps", steps, 1)
    check_int("batch_size", batch_size, 1)
    check_int("seed", seed, 0)
    check_int("log_every", log_every, 1)
    data = make_digits()
    in_dim = data.x.shape[1]
    names = ["backprop", "frozen"] + (list(METHODS[1:6]) if method == "all" else [method])
    cuts = list(range(1, depth))

    torch.manual_seed(seed)
    init = DeepLinearNet(in_dim, width, 1, depth).state_dict()
    nets, opts, ifaces, synth_opts = {}, {}, {}, {}
    for name in names:
        nets[name] = DeepLinearNet(in_dim, width, 1, depth)
        nets[name].load_state_dict(init)
        if name == "frozen":
            for layer in nets[name].layers[:-1]:
                layer.requires_grad_(False)
        trainable = [p for p in nets[name].parameters() if p.requires_grad]
        opts[name] = torch.optim.SGD(trainable, lr=model_lr)
        if name in ("sg", "cdni"):
            kind = sg_synthesizer if name == "sg" else "linear"
            ifaces[name] = {k: _learned_interface(width, 1 if name == "cdni" else 0, kind,
                                                  True, 0.0) for k in cuts}
        elif name in FIXED_METHODS:
            fixed = fixed_synthesizers(name, nets[name].weights, cuts, seed=seed + 3)
            ifaces[name] = {k: DecoupledInterface(s) for k, s in fixed.items()}
        else:
            ifaces[name] = {}
        params = _synth_params(ifaces[name])
        lr = sg_synth_lr if name == "sg" else synth_lr
        synth_opts[name] = torch.optim.SGD(params, lr=lr) if params else None

    def test_accuracy(net: DeepLinearNet) -> float:
        return accuracy(net, data.x_test, data.y_test)

    yield from _lockstep(nets, ifaces, opts, synth_opts, data.x, data.y, logistic_loss,
                         ("acc", test_accuracy), steps, batch_size, seed, log_every)
    return {"nets": nets, "interfaces": ifaces, "data": data}
