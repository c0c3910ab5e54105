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

from ..data.datasets import sampled_batches
from ..diagnostics import cosine_similarity
from ..interface import (ABLATIONS, DecoupledInterface, check_controls, context_shuffler,
                         control_name, shuffle_rows)
from ..runner import Result, Row, Settings, lockstep, seeded
from ..synthesizer import KINDS, Synthesizer
from ..validate import check_bool, check_choice, check_float, check_int

VARIANTS = ("dni", "cdni", "both")


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
             synth_opt: torch.optim.Optimizer, x: Tensor, y: Tensor,
             shuffle: torch.Generator | None = None) -> dict[str, float]:
    """One decoupled step; returns the loss, the SG cosine and the synthesizer loss.

    With ``interface.lam == 0`` the lower module gets its gradient before the
    upper module has even run. The context, when the synthesizer takes one
    (cDNI), is the target y itself: dL/dh is affine in (h, y), so no one-hot
    encoding is needed. ``shuffle`` permutes it across the batch (the
    ``"shuffled_context"`` ablation).
    """
    opt.zero_grad()
    synth_opt.zero_grad()
    context = shuffle_rows(y, shuffle) if interface.synthesizer.context_dim else None
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


@dataclass(frozen=True)
class LinearSettings(Settings):
    """Notebook 01's experiment: backprop next to DNI and/or cDNI on the linear model.

    ``variants``: the synthetic-gradient copies, ``"dni"`` (the synthesizer
    sees h), ``"cdni"`` (h and the target y) or ``"both"``; ``kind``,
    ``zero_init``: their synthesizers; ``lam``: BP(lambda) mix; ``noise``:
    label noise of the regression task; ``log_every``: steps per logged row.
    ``ablation``: switch one piece of the mechanism off in the synthetic-gradient
    copies (``"zero_synthetic_gradient"``, ``"shuffled_context"``; see ``interface``).
    ``controls``: ``(variant, ablation)`` pairs, each a control copy of that variant
    with one piece switched off (``cdni_zero_sg``, ``cdni_shuffled``), trained alongside.

    The hidden layer (5 units) is narrower than the input (10): a lower module
    that never learns keeps a random 5-dimensional view of x and the loss stays
    far above the noise floor, so whether the lower module learns shows.
    """

    model_lr: float = 0.05
    synth_lr: float = 0.1
    variants: str = "both"
    kind: str = "linear"
    zero_init: bool = True
    lam: float = 0.0
    steps: int = 1500
    batch_size: int = 32
    hidden_dim: int = 5
    noise: float = 0.5
    seed: int = 0
    log_every: int = 10
    ablation: str = "none"
    controls: tuple[tuple[str, str], ...] = (("cdni", "zero_synthetic_gradient"),
                                             ("cdni", "shuffled_context"))

    def validate(self) -> None:
        check_float("model_lr", self.model_lr, 0.0, low_open=True)
        check_float("synth_lr", self.synth_lr, 0.0, low_open=True)
        check_choice("variants", self.variants, VARIANTS)
        check_choice("kind", self.kind, KINDS)
        check_bool("zero_init", self.zero_init)
        check_float("lam", self.lam, 0.0, 1.0)
        check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("hidden_dim", self.hidden_dim, 1)
        check_float("noise", self.noise, 0.0)
        check_int("seed", self.seed, 0)
        check_int("log_every", self.log_every, 1)
        check_choice("ablation", self.ablation, ABLATIONS[:3])
        check_controls(self.controls, ("dni", "cdni"), ABLATIONS[1:3])


class LinearTrainer:
    """One variant of the linear model: plain backprop (``interface=None``) or decoupled."""

    def __init__(self, model: LinearNet, model_lr: float,
                 interface: DecoupledInterface | None = None, synth_lr: float = 0.1,
                 shuffle: torch.Generator | None = None) -> None:
        self.model, self.interface, self.shuffle = model, interface, shuffle
        self.opt = torch.optim.SGD(model.parameters(), lr=model_lr)
        self.synth_opt = (torch.optim.SGD(interface.synthesizer.parameters(), lr=synth_lr)
                          if interface is not None else None)

    def step(self, x: Tensor, y: Tensor) -> Row:
        if self.interface is None:
            backprop_step(self.model, self.opt, x, y)
            return {}
        row = dni_step(self.model, self.interface, self.opt, self.synth_opt, x, y, self.shuffle)
        return {"cos": row["cosine"], "synth_loss": row["synth_loss"]}


def compare_linear(settings: LinearSettings | None = None, **overrides) -> Iterator[Row]:
    """Train backprop, DNI and/or cDNI copies of one model side by side.

    All copies start from the same weights and see the same batches. Every
    ``log_every`` steps it yields the test loss of each copy (``test_loss/<v>``)
    and, for the synthetic-gradient copies, the mean cosine between synthetic
    and true gradient (``cos/<v>``) and the synthesizer loss (``synth_loss/<v>``).
    Returns a ``Result`` whose ``data`` is the regression task.
    """
    s = LinearSettings.build(settings, **overrides)
    data = make_regression(noise=s.noise, seed=s.seed)
    in_dim, out_dim = data.x.shape[1], data.y.shape[1]
    # (name, synthesizer sees the label, ablation) of every copy beside backprop
    copies = [(v, v == "cdni", s.ablation)
              for v in {"dni": ["dni"], "cdni": ["cdni"], "both": ["dni", "cdni"]}[s.variants]]
    copies += [(control_name(v, a), v == "cdni", a) for v, a in s.controls]

    trainers: dict[str, LinearTrainer] = {}
    with seeded(s.seed):       # each copy is built afresh, then given the shared initial weights
        init = LinearNet(in_dim, s.hidden_dim, out_dim).state_dict()
        model = LinearNet(in_dim, s.hidden_dim, out_dim)
        model.load_state_dict(init)
        trainers["backprop"] = LinearTrainer(model, s.model_lr)
        for name, conditioned, ablation in copies:
            model = LinearNet(in_dim, s.hidden_dim, out_dim)
            model.load_state_dict(init)
            synth = Synthesizer(s.hidden_dim, context_dim=out_dim if conditioned else 0,
                                kind=s.kind, zero_init=s.zero_init)
            interface = DecoupledInterface(synth, lam=s.lam,
                                           zero_output=ablation == "zero_synthetic_gradient")
            trainers[name] = LinearTrainer(model, s.model_lr, interface, s.synth_lr,
                                           context_shuffler(ablation, s.seed))

    batches = sampled_batches(data.x, data.y, s.batch_size,
                              torch.Generator().manual_seed(s.seed + 1))
    def test_loss(name: str, trainer: LinearTrainer) -> Row:
        with torch.no_grad():
            return {"test_loss": float(squared_loss(trainer.model(data.x_test), data.y_test))}

    result: Result = yield from lockstep(trainers, batches, s.steps, s.log_every, test_loss,
                                         header=lambda step: {"noise_floor": data.noise_floor},
                                         data=data, settings=s)
    return result
