"""Notebook 01's experiment: synthetic gradients on a two-layer linear model.

The lower module A is ``h = W1 x + b1``, the upper module B is
``y_hat = W2 h + b2`` and the loss is ``0.5 * ||y_hat - y||^2`` averaged over
the batch. Per example,

    dL/dh = W2^T (W2 h + b2 - y),

which is *affine in (h, y)*: a linear synthesizer that also sees y (cDNI)
can represent it exactly, while one that sees only h can at best learn
E[dL/dh | h].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor, nn

from .diagnostics import cosine_similarity
from .interface import DecoupledInterface
from .synthesizer import Synthesizer
from .validate import check_choice, check_float, check_int

METHODS = ("backprop", "sg", "cdni")


@dataclass
class RegressionData:
    """A generated linear regression task ``y = A x + noise``."""

    x: Tensor
    y: Tensor
    x_test: Tensor
    y_test: Tensor
    noise: float

    @property
    def noise_floor(self) -> float:
        """The lowest expected loss any model can reach: 0.5 * out_dim * noise^2."""
        return 0.5 * self.y.shape[1] * self.noise ** 2


def make_regression(n_train: int = 2048, n_test: int = 1024, in_dim: int = 10, out_dim: int = 5,
                    noise: float = 0.1, seed: int = 0) -> RegressionData:
    """Draw x ~ N(0, I) and y = A x + noise with a random A; fixed by ``seed``."""
    check_int("n_train", n_train, 1)
    check_int("n_test", n_test, 1)
    check_int("in_dim", in_dim, 1)
    check_int("out_dim", out_dim, 1)
    check_float("noise", noise, 0.0)
    check_int("seed", seed, 0)
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(out_dim, in_dim, generator=g) / in_dim ** 0.5
    x = torch.randn(n_train + n_test, in_dim, generator=g)
    y = x @ a.T + noise * torch.randn(n_train + n_test, out_dim, generator=g)
    return RegressionData(x[:n_train], y[:n_train], x[n_train:], y[n_train:], noise)


class LinearNet(nn.Module):
    """Two linear modules: ``lower`` (A) and ``upper`` (B)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        super().__init__()
        self.lower = nn.Linear(in_dim, hidden_dim)
        self.upper = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.upper(self.lower(x))


def squared_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """0.5 * squared error, summed over outputs, averaged over the batch."""
    return 0.5 * (prediction - target).pow(2).sum(dim=1).mean()


def backprop_step(model: LinearNet, opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> float:
    """One locked step: forward, full backward, update."""
    opt.zero_grad()
    loss = squared_loss(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


def dni_step(model: LinearNet, interface: DecoupledInterface, opt: torch.optim.Optimizer,
             synth_opt: torch.optim.Optimizer, x: Tensor, y: Tensor) -> dict[str, float]:
    """One decoupled step; returns the loss, the SG cosine and the synthesizer loss.

    With ``interface.lam == 0`` the lower module gets its gradient before the
    upper module has even run. The context, when the synthesizer takes one, is y.
    """
    opt.zero_grad()
    synth_opt.zero_grad()
    context = y if interface.synthesizer.context_dim else None
    h = model.lower(x)
    h_upper = interface(h, context)
    if interface.lam == 0:
        interface.backward()             # A is update-unlocked: it needs nothing from B
    loss = squared_loss(model.upper(h_upper), y)
    loss.backward()                      # B learns from the real loss; dL/dh arrives at the cut
    if interface.lam > 0:
        interface.backward()             # BP(lambda): A had to wait for the true gradient
    opt.step()
    cosine = cosine_similarity(interface.synthetic_gradient, interface.received_gradient)
    synth_loss = interface.synthesizer_loss()
    synth_loss.backward()
    synth_opt.step()
    return {"loss": float(loss.detach()), "cosine": cosine, "synth_loss": float(synth_loss.detach())}


def compare_linear(model_lr: float = 0.05, synth_lr: float = 0.1, context: str = "both",
                   kind: str = "linear", zero_init: bool = True, lam: float = 0.0,
                   steps: int = 1500, batch_size: int = 32, hidden_dim: int = 10,
                   noise: float = 0.5, seed: int = 0, log_every: int = 10
                   ) -> Iterator[dict[str, float]]:
    """Train backprop, SG and/or cDNI copies of one model side by side.

    All copies start from the same weights and see the same batches. Every
    ``log_every`` steps it yields the test loss of each copy and, for the
    synthetic-gradient copies, the mean cosine between synthetic and true
    gradient and the synthesizer loss over the last ``log_every`` steps.

    ``context`` picks the synthetic-gradient copies: ``"off"`` (SG),
    ``"on"`` (cDNI) or ``"both"``.
    """
    check_float("model_lr", model_lr, 0.0, low_open=True)
    check_float("synth_lr", synth_lr, 0.0, low_open=True)
    check_choice("context", context, ("off", "on", "both"))
    check_choice("kind", kind, ("linear", "mlp"))
    check_float("lam", lam, 0.0, 1.0)
    check_int("steps", steps, 1)
    check_int("batch_size", batch_size, 1)
    check_int("hidden_dim", hidden_dim, 1)
    check_int("log_every", log_every, 1)
    data = make_regression(noise=noise, seed=seed)
    in_dim, out_dim = data.x.shape[1], data.y.shape[1]
    methods = ["backprop"] + {"off": ["sg"], "on": ["cdni"], "both": ["sg", "cdni"]}[context]

    torch.manual_seed(seed)
    init = LinearNet(in_dim, hidden_dim, out_dim).state_dict()
    models, opts, interfaces, synth_opts = {}, {}, {}, {}
    for method in methods:
        models[method] = LinearNet(in_dim, hidden_dim, out_dim)
        models[method].load_state_dict(init)
        opts[method] = torch.optim.SGD(models[method].parameters(), lr=model_lr)
        if method != "backprop":
            synth = Synthesizer(hidden_dim, context_dim=out_dim if method == "cdni" else 0,
                                kind=kind, zero_init=zero_init)
            interfaces[method] = DecoupledInterface(synth, lam=lam)
            synth_opts[method] = torch.optim.SGD(synth.parameters(), lr=synth_lr)

    g = torch.Generator().manual_seed(seed + 1)
    window: dict[str, list[dict[str, float]]] = {m: [] for m in interfaces}
    for step in range(1, steps + 1):
        idx = torch.randint(0, data.x.shape[0], (batch_size,), generator=g)
        x, y = data.x[idx], data.y[idx]
        for method in methods:
            if method == "backprop":
                backprop_step(models[method], opts[method], x, y)
            else:
                window[method].append(dni_step(models[method], interfaces[method], opts[method],
                                               synth_opts[method], x, y))
        if step % log_every == 0 or step == steps:
            row: dict[str, float] = {"step": step, "noise_floor": data.noise_floor}
            with torch.no_grad():
                for method in methods:
                    row[f"loss/{method}"] = float(squared_loss(models[method](data.x_test),
                                                               data.y_test))
            for method, rows in window.items():
                row[f"cos/{method}"] = sum(r["cosine"] for r in rows) / len(rows)
                row[f"synth_loss/{method}"] = sum(r["synth_loss"] for r in rows) / len(rows)
                rows.clear()
            yield row
    return {"models": models, "interfaces": interfaces, "data": data}
