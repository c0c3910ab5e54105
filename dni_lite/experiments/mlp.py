"""Notebook 03's model: an MLP with a decoupled interface at every layer boundary.

The network is a list of layers: ``depth`` hidden layers
(Linear -> BatchNorm -> ReLU) and a linear output layer. Boundary ``k`` sits
on the output ``h_k`` of hidden layer ``k`` and is one of

* ``"backprop"``: no cut, layers k and k+1 learn together from the true gradient;
* ``"dni"``: a ``DecoupledInterface`` whose synthesizer sees only ``h_k``;
* ``"cdni"``: the same, with the one-hot label as context;
* ``"none"``: a cut with no learning signal at all: the layers below stay at
  their random initialisation (the paper's "no backprop" column when every
  boundary is ``"none"``: only the output layer learns).

Layers joined by backprop boundaries form a *stage*; with every boundary
decoupled, each stage is one layer. One training step runs the stages bottom
to top, and each stage is update-unlocked:

1. ``layer_step``: forward the stage, push the synthetic gradient of its top
   interface into it, update it at once, and return the gradient it sends
   down to its input, computed from that synthetic gradient;
2. ``synthesizer_step``: that gradient is the *bootstrapped* target for the
   synthesizer of the interface below (only the output layer sees the real
   loss, so only the topmost synthesizer regresses on a true gradient).

No backward pass ever crosses a decoupled boundary. ``true_gradients``
computes the real dL/dh_k on the side, for diagnostics only.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..data.datasets import DATASETS, Dataset, load_dataset, minibatch_indices
from ..diagnostics import accuracy, cosine_similarity
from ..interface import (ABLATIONS, DecoupledInterface, check_controls, context_shuffler,
                         control_name, label_context, regression_target)
from ..runner import Progress, Result, Row, Settings, lockstep, seeded
from ..synthesizer import KINDS, Synthesizer
from ..validate import check_bool, check_choice, check_float, check_int

BOUNDARY_MODES = ("backprop", "dni", "cdni", "none")
SG_MODES = ("dni", "cdni")
# Which boundaries the DNI/cDNI variants of compare_mlp decouple (the rest stay backprop).
CUT_PATTERNS = ("all", "alternate", "top", "bottom")
VARIANTS = ("no_backprop", "backprop", "dni", "cdni")
# Which synthetic-gradient variants compare_mlp trains beside backprop.
SG_VARIANTS = ("dni", "cdni", "both")


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units and a linear output layer.

    ``layers[k]`` for ``k < depth`` is Linear -> BatchNorm1d -> ReLU (no
    BatchNorm when ``batchnorm=False``); ``layers[depth]`` is the output layer.
    """

    def __init__(self, in_dim: int, out_dim: int, depth: int = 3, width: int = 256,
                 batchnorm: bool = True) -> None:
        super().__init__()
        check_int("in_dim", in_dim, 1)
        check_int("out_dim", out_dim, 1)
        self.depth = check_int("depth", depth, 1)
        self.width = check_int("width", width, 1)
        check_bool("batchnorm", batchnorm)
        layers = []
        for k in range(depth):
            parts = [nn.Linear(in_dim if k == 0 else width, width)]
            if batchnorm:
                parts.append(nn.BatchNorm1d(width))
            parts.append(nn.ReLU())
            layers.append(nn.Sequential(*parts))
        layers.append(nn.Linear(width, out_dim))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


def make_stages(modes: Sequence[str]) -> list[list[int]]:
    """Group layer indices into stages: runs of layers joined by backprop boundaries.

    ``modes[k]`` is the mode of the boundary above hidden layer ``k``, so a
    model of depth ``len(modes)`` has ``len(modes) + 1`` layers.
    """
    for k, mode in enumerate(modes):
        check_choice(f"modes[{k}]", mode, BOUNDARY_MODES)
    stages, current = [], [0]
    for k, mode in enumerate(modes):
        if mode == "backprop":
            current.append(k + 1)
        else:
            stages.append(current)
            current = [k + 1]
    stages.append(current)
    return stages


@dataclass
class LayerStep:
    """What one update-unlocked step of a layer (or stage) produced.

    ``h_out``: the activation it sends up (a detached leaf that collects the
    gradient the layer above sends back); ``grad_in``: the gradient it sends
    down to its input (``None`` when it sends none); ``loss``: the real loss
    for the output layer, else ``None``.
    """

    h_out: Tensor | None
    grad_in: Tensor | None
    loss: float | None = None


def layer_step(layer: nn.Module, optimizer: torch.optim.Optimizer | None, h_in: Tensor,
               interface: DecoupledInterface | None = None, context: Tensor | None = None,
               y: Tensor | None = None, send_gradient: bool = True) -> LayerStep:
    """Forward one layer (or stage), update it from its own learning signal, report.

    * with an ``interface`` on top: the synthetic gradient of ``h_out`` is
      pushed into the layer right after its forward pass (update unlocking);
    * with labels ``y`` (the output layer): the real cross-entropy loss;
    * with neither: the layer only runs forward and does not learn.

    ``h_in`` is used as it is when it is a leaf that requires grad (the tensor
    an interface returned, so the gradient also shows up as that interface's
    ``received_gradient``); otherwise a detached copy is made, requiring grad
    when ``send_gradient``. ``grad_in`` is the gradient the layer sends down:
    the bootstrapped target for the synthesizer below. The optimizer steps
    after the backward pass, so ``h_out`` and ``grad_in`` belong to the
    weights the layer had when it ran forward.
    """
    if interface is not None and y is not None:
        raise ValueError("give either an interface (hidden layer) or labels y (output layer), "
                         "not both")
    learns = interface is not None or y is not None
    if not (h_in.is_leaf and h_in.requires_grad):
        h_in = h_in.detach().requires_grad_(send_gradient and learns)
    elif h_in.grad is not None:
        raise ValueError("h_in already holds a gradient: it was used for a step before")
    if not learns:
        with torch.no_grad():
            return LayerStep(layer(h_in).detach(), None)
    return layer_update(layer(h_in), h_in, optimizer, interface, context, y)


def layer_update(out: Tensor, h_in: Tensor, optimizer: torch.optim.Optimizer | None,
                 interface: DecoupledInterface | None = None, context: Tensor | None = None,
                 y: Tensor | None = None) -> LayerStep:
    """The learning half of ``layer_step``: ``out`` is the layer's output on ``h_in``, just
    computed; push the synthetic gradient (``interface``) or the real loss (``y``) into it and
    step. A pipeline stage calls it after it has already sent ``out`` up."""
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
    if interface is not None:
        h_out = interface(out, context)
        interface.backward()
        loss = None
    else:
        loss_t = F.cross_entropy(out, y)
        loss_t.backward()
        h_out, loss = None, float(loss_t.detach())
    if optimizer is not None:
        optimizer.step()
    return LayerStep(h_out, h_in.grad, loss)


def synthesizer_step(interface: DecoupledInterface, optimizer: torch.optim.Optimizer,
                     target: Tensor | None = None) -> float:
    """Regress the interface's synthesizer toward ``target`` (a raw dL/dh); return its loss.

    ``target`` defaults to the gradient the layer above sent back to the cut;
    in a DNI stack that is itself computed from a synthetic gradient
    (bootstrapping), except at the topmost interface where it is the true one.
    """
    optimizer.zero_grad(set_to_none=True)
    loss = interface.synthesizer_loss(target)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def true_gradients(model: MLP, x: Tensor, y: Tensor) -> list[Tensor]:
    """The true dL/dh_k of the batch-mean cross-entropy at every hidden layer output.

    Computed on the side with the current weights: no parameter's ``.grad``
    and no BatchNorm running statistic is touched (the buffers are cloned),
    so it never feeds into training.
    """
    params = dict(model.named_parameters())
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    state = {**params, **buffers}
    hidden, h = [], x
    for k, layer in enumerate(model.layers):
        prefix = f"layers.{k}."
        sub = {name[len(prefix):]: t for name, t in state.items() if name.startswith(prefix)}
        h = functional_call(layer, sub, (h,))
        if k < model.depth:
            hidden.append(h)
    loss = F.cross_entropy(h, y)
    return list(torch.autograd.grad(loss, hidden))


class DecoupledMLP:
    """An MLP plus, per boundary, its interface and synthesizer optimizer, per stage its optimizer.

    Args:
        model: the network (its ``depth`` sets the number of boundaries).
        modes: one of ``BOUNDARY_MODES`` per boundary, or one mode for all.
        n_classes: the context size of cDNI synthesizers (one-hot labels).
        kind, hidden_dim, zero_init: passed to each ``Synthesizer``.
        lr, synth_lr: Adam learning rates of the layers and the synthesizers.
        ablation: one of ``interface.ABLATIONS``, switching one piece of the
            mechanism off at every decoupled boundary (``seed`` seeds the shuffle).
    """

    def __init__(self, model: MLP, modes: str | Sequence[str], n_classes: int,
                 kind: str = "linear", hidden_dim: int = 256, zero_init: bool = True,
                 lr: float = 1e-3, synth_lr: float = 3e-3, ablation: str = "none",
                 seed: int = 0) -> None:
        if not isinstance(model, MLP):
            raise ValueError(f"model must be an MLP, got {type(model).__name__}")
        if isinstance(modes, str):
            modes = [modes] * model.depth
        modes = list(modes)
        if len(modes) != model.depth:
            raise ValueError(f"modes must name one mode per boundary ({model.depth}), "
                             f"got {len(modes)}")
        self.n_classes = check_int("n_classes", n_classes, 1)
        check_float("lr", lr, 0.0, low_open=True)
        check_float("synth_lr", synth_lr, 0.0, low_open=True)
        self.ablation = check_choice("ablation", ablation, ABLATIONS)
        self.shuffle = context_shuffler(ablation, seed)
        self.model, self.modes = model, modes
        self.stages = make_stages(modes)
        self.stage_modules = [nn.Sequential(*[model.layers[i] for i in stage])
                              for stage in self.stages]
        self.optimizers: list[torch.optim.Optimizer | None] = []
        for s, module in enumerate(self.stage_modules):
            top = self.stages[s][-1]
            frozen = top < model.depth and modes[top] == "none"
            self.optimizers.append(None if frozen else
                                   torch.optim.Adam(module.parameters(), lr=lr))
        self.interfaces: list[DecoupledInterface | None] = []
        self.synth_optimizers: list[torch.optim.Optimizer | None] = []
        for mode in modes:
            if mode in SG_MODES:
                synth = Synthesizer(model.width, n_classes if mode == "cdni" else 0, kind=kind,
                                    hidden_dim=hidden_dim, zero_init=zero_init)
                self.interfaces.append(DecoupledInterface(
                    synth, zero_output=ablation == "zero_synthetic_gradient"))
                self.synth_optimizers.append(torch.optim.Adam(synth.parameters(), lr=synth_lr))
            else:
                self.interfaces.append(None)
                self.synth_optimizers.append(None)

    def step(self, x: Tensor, y: Tensor, diagnose: bool = False) -> dict[str, float]:
        """One training step on a batch, stage by stage, bottom to top.

        Returns the training loss ``train_loss`` and, per decoupled boundary k,
        the synthesizer loss ``synth_loss/L{k+1}``; with ``diagnose`` also the
        cosine ``cos/L{k+1}`` between the synthetic and the true gradient
        (computed on the side before any weight moves).
        """
        self.model.train()
        truth = true_gradients(self.model, x, y) if diagnose else None
        context = self.context(y)
        metrics: dict[str, float] = {}
        h: Tensor = x
        below: int | None = None          # the boundary under the current stage
        for s, (stage, module) in enumerate(zip(self.stages, self.stage_modules)):
            top = stage[-1]
            is_output = top == self.model.depth
            iface = None if is_output else self.interfaces[top]
            mode = None if is_output else self.modes[top]
            sends = below is not None and self.interfaces[below] is not None
            result = layer_step(module, self.optimizers[s], h, interface=iface,
                                context=context if mode == "cdni" else None,
                                y=y if is_output else None, send_gradient=sends)
            if sends and result.grad_in is not None:   # a frozen stage sends nothing down
                # grad_in is bootstrapped unless this stage learned from the real loss
                target = regression_target(result.grad_in, not is_output, self.ablation)
                metrics[f"synth_loss/L{below + 1}"] = synthesizer_step(
                    self.interfaces[below], self.synth_optimizers[below], target)
            if result.loss is not None:
                metrics["train_loss"] = result.loss
            if iface is not None and truth is not None:
                metrics[f"cos/L{top + 1}"] = cosine_similarity(iface.synthetic_gradient,
                                                               truth[top])
            h, below = result.h_out, (None if is_output else top)
        return metrics

    def context(self, y: Tensor) -> Tensor:
        """The cDNI context of a batch (shuffled across it under ``"shuffled_context"``)."""
        return label_context(y, self.n_classes, self.shuffle)

    def parameters(self) -> Iterator[nn.Parameter]:
        """The model's and the synthesizers' parameters."""
        yield from self.model.parameters()
        for iface in self.interfaces:
            if iface is not None:
                yield from iface.parameters()


def cut_modes(depth: int, mode: str, cut: str = "all") -> list[str]:
    """Per-boundary modes: ``mode`` at the boundaries ``cut`` selects, backprop elsewhere.

    ``cut``: ``"all"`` boundaries, every other one from the bottom
    (``"alternate"``), only the ``"top"`` or only the ``"bottom"`` one.
    """
    check_int("depth", depth, 1)
    check_choice("mode", mode, BOUNDARY_MODES)
    check_choice("cut", cut, CUT_PATTERNS)
    chosen = {"all": range(depth), "alternate": range(0, depth, 2), "top": [depth - 1],
              "bottom": [0]}[cut]
    return [mode if k in chosen else "backprop" for k in range(depth)]


@dataclass(frozen=True)
class MLPBaseSettings(Settings):
    """The MLP, its data and its training budget, shared by notebooks 03 and 04.

    ``kind``, ``synth_hidden``, ``synth_lr``: the synthesizers; ``lr``: the
    layers (Adam). ``n_train``: keep only that many training examples (quick runs).
    ``ablation``: one of ``interface.ABLATIONS`` in every decoupled copy.
    """

    dataset: str = "mnist1d"
    depth: int = 3
    width: int = 256
    kind: str = "linear"
    synth_hidden: int = 256
    lr: float = 3e-4
    synth_lr: float = 3e-3
    batch_size: int = 128
    epochs: int = 15
    seed: int = 0
    batchnorm: bool = True
    log_every: int = 20
    n_train: int | None = None
    ablation: str = "none"

    def validate(self) -> None:
        check_choice("dataset", self.dataset, DATASETS)
        check_int("depth", self.depth, 1, 16)
        check_int("width", self.width, 1, 4096)
        check_choice("kind", self.kind, KINDS)
        check_int("synth_hidden", self.synth_hidden, 1, 4096)
        check_float("lr", self.lr, 0.0, 1.0, low_open=True)
        check_float("synth_lr", self.synth_lr, 0.0, 1.0, low_open=True)
        check_int("batch_size", self.batch_size, 2)
        check_int("epochs", self.epochs, 1)
        check_int("seed", self.seed, 0)
        check_bool("batchnorm", self.batchnorm)
        check_int("log_every", self.log_every, 1)
        if self.n_train is not None:
            check_int("n_train", self.n_train, 2)
        check_choice("ablation", self.ablation, ABLATIONS)


@dataclass(frozen=True)
class MLPSettings(MLPBaseSettings):
    """Notebook 03's experiment: copies of one MLP, each with other boundaries.

    ``variants`` picks the synthetic-gradient copies (``"dni"``, ``"cdni"``,
    ``"both"``) and ``cut`` the boundaries they decouple; ``no_backprop``
    adds the copy in which only the output layer learns; ``zero_init``
    starts the synthesizers' output at zero. ``diagnose_every``: measure
    cosines to the true gradient every so many steps (0: never).
    ``controls``: ``(variant, ablation)`` pairs, each a copy of that variant
    with one piece of the mechanism switched off (``dni_no_bootstrap``,
    ``cdni_shuffled``). ``paper_dni`` adds ``dni_mlp``: DNI with the paper's
    MNIST synthesizer, an MLP with two hidden layers of ``paper_hidden`` units.
    """

    cut: str = "all"
    variants: str = "both"
    no_backprop: bool = True
    zero_init: bool = True
    diagnose_every: int = 4
    controls: tuple[tuple[str, str], ...] = (("dni", "no_bootstrap"), ("cdni", "shuffled_context"))
    paper_dni: bool = True
    paper_hidden: int = 1024

    def validate(self) -> None:
        super().validate()
        check_choice("cut", self.cut, CUT_PATTERNS)
        check_choice("variants", self.variants, SG_VARIANTS)
        check_bool("no_backprop", self.no_backprop)
        check_bool("zero_init", self.zero_init)
        check_int("diagnose_every", self.diagnose_every, 0)
        check_controls(self.controls, SG_MODES, ABLATIONS[1:])
        check_bool("paper_dni", self.paper_dni)
        check_int("paper_hidden", self.paper_hidden, 1, 4096)


class MLPTrainer:
    """A ``DecoupledMLP`` as a side-by-side variant: diagnoses every ``diagnose_every`` steps."""

    def __init__(self, setup: DecoupledMLP, diagnose_every: int = 0) -> None:
        self.setup, self.diagnose_every, self.steps = setup, diagnose_every, 0

    @property
    def model(self) -> MLP:
        return self.setup.model

    def step(self, x: Tensor, y: Tensor) -> Row:
        self.steps += 1
        diagnose = self.diagnose_every > 0 and self.steps % self.diagnose_every == 0
        return self.setup.step(x, y, diagnose=diagnose)


def epoch_batches(data: Dataset, batch_size: int, seed: int) -> Iterator[tuple[Tensor, Tensor]]:
    """The minibatch stream every MLP experiment shares: epochs of a seeded shuffle."""
    for idx in minibatch_indices(data.x.shape[0], batch_size,
                                 torch.Generator().manual_seed(seed + 2)):
        yield data.x[idx], data.y[idx]


def compare_mlp(settings: MLPSettings | None = None, **overrides) -> Iterator[Row]:
    """Train backprop, DNI, cDNI and no-backprop copies of one MLP side by side.

    All copies start from the same weights and see the same batches; DNI and
    cDNI start from the same synthesizer weights. Every ``log_every`` steps it
    yields the test accuracy of each copy in percent (``acc/<variant>``), the
    mean training loss (``train_loss/<variant>``) and, per decoupled boundary,
    the mean synthesizer loss and cosine to the true gradient
    (``synth_loss/<variant>/Lk``, ``cos/<variant>/Lk``). Returns a ``Result``.
    """
    s = MLPSettings.build(settings, **overrides)
    data = load_dataset(s.dataset, seed=s.seed, n_train=s.n_train)
    # name -> (boundary mode, synthesizer kind, synthesizer hidden size, ablation)
    copies = {}
    if s.no_backprop:
        copies["no_backprop"] = ("none", s.kind, s.synth_hidden, "none")
    copies["backprop"] = ("backprop", s.kind, s.synth_hidden, "none")
    for variant in {"dni": ["dni"], "cdni": ["cdni"], "both": ["dni", "cdni"]}[s.variants]:
        copies[variant] = (variant, s.kind, s.synth_hidden, s.ablation)
    if s.paper_dni:
        copies["dni_mlp"] = ("dni", "mlp", s.paper_hidden, s.ablation)
    for variant, ablation in s.controls:
        copies[control_name(variant, ablation)] = (variant, s.kind, s.synth_hidden, ablation)

    with seeded(s.seed):
        init = MLP(data.in_dim, data.n_classes, s.depth, s.width, s.batchnorm)
    trainers = {}
    for name, (mode, kind, hidden, ablation) in copies.items():
        with seeded(s.seed + 1):         # identical synthesizer inits for every copy
            setup = DecoupledMLP(copy.deepcopy(init), cut_modes(s.depth, mode, s.cut)
                                 if mode in SG_MODES else [mode] * s.depth, data.n_classes,
                                 kind=kind, hidden_dim=hidden, zero_init=s.zero_init,
                                 lr=s.lr, synth_lr=s.synth_lr, ablation=ablation, seed=s.seed)
        trainers[name] = MLPTrainer(setup, s.diagnose_every if mode in SG_MODES else 0)

    result: Result = yield from lockstep_epochs(trainers, data, s)
    return result


def lockstep_epochs(trainers: dict[str, object], data: Dataset, s: MLPBaseSettings
                    ) -> Iterator[Row]:
    """``runner.lockstep`` for the MLP experiments: ``s.epochs`` of the shared batch stream.

    Rows carry ``epoch`` and each variant's test accuracy (``acc/<variant>``).
    """
    steps_per_epoch = max(1, data.x.shape[0] // s.batch_size)   # the last partial batch is dropped
    result: Result = yield from lockstep(
        trainers, epoch_batches(data, s.batch_size, s.seed), s.epochs * steps_per_epoch,
        s.log_every, lambda name, t: {"acc": accuracy(t.model, data.x_test, data.y_test)},
        header=lambda step: {"epoch": step / steps_per_epoch}, data=data, settings=s)
    return result


@dataclass(frozen=True)
class SweepSettings(MLPSettings):
    """``compare_mlp`` at every depth of ``depths`` and seed of ``seeds`` (cosines off)."""

    depths: tuple[int, ...] = (2, 4)
    seeds: tuple[int, ...] = (0, 1)
    diagnose_every: int = 0
    controls: tuple[tuple[str, str], ...] = ()
    paper_dni: bool = False

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.depths, tuple) or not self.depths:
            raise ValueError(f"depths must be a non-empty tuple of depths, got {self.depths!r}")
        if not isinstance(self.seeds, tuple) or not self.seeds:
            raise ValueError(f"seeds must be a non-empty tuple of seeds, got {self.seeds!r}")
        for d in self.depths:
            check_int("depths[]", d, 1, 16)
        for seed in self.seeds:
            check_int("seeds[]", seed, 0)


def sweep_depth(settings: SweepSettings | None = None, **overrides) -> Iterator[Row]:
    """A Table-1-style sweep: ``compare_mlp`` for every depth and seed.

    Yields one row per depth with the mean test error (percent) of each
    variant over the seeds (``err/<variant>``) and its spread (``std/<variant>``),
    and a ``Progress`` heartbeat between them (``run_to_end`` skips those).
    Returns ``{variant: {depth: [error per seed]}}``; ``format_table`` prints it.
    """
    s = SweepSettings.build(settings, **overrides)
    errors: dict[str, dict[int, list[float]]] = {}
    runs = len(s.depths) * len(s.seeds)
    for i, d in enumerate(s.depths):
        for j, seed in enumerate(s.seeds):
            run = compare_mlp(s, depth=d, seed=seed)
            while True:                  # a heartbeat per row and heartbeat: the sweep stops at once
                try:
                    row = next(run)
                except StopIteration as end:
                    result = end.value
                    break
                part = (row.done / row.total if isinstance(row, Progress)
                        else row["epoch"] / s.epochs)
                yield Progress(i * len(s.seeds) + j + part, runs, f"depth {d}, seed {seed}")
            for variant, acc in result.final("acc").items():
                errors.setdefault(variant, {}).setdefault(d, []).append(100.0 - acc)
        row: dict[str, float] = {"depth": d}
        for variant, by_depth in errors.items():
            values = torch.tensor(by_depth[d], dtype=torch.float64)
            row[f"err/{variant}"] = float(values.mean())
            row[f"std/{variant}"] = float(values.std()) if len(values) > 1 else 0.0
        yield row
    return errors


def format_table(errors: dict[str, dict[int, list[float]]]) -> str:
    """Test error (percent) as mean ± std over seeds: one row per variant, one column per depth."""
    depths = sorted({d for by_depth in errors.values() for d in by_depth})
    lines = ["variant      " + "".join(f"{f'depth {d}':>16}" for d in depths)]
    for variant in [v for v in VARIANTS if v in errors]:
        cells = []
        for d in depths:
            values = torch.tensor(errors[variant].get(d, []), dtype=torch.float64)
            std = float(values.std()) if len(values) > 1 else 0.0
            cells.append(f"{float(values.mean()):7.1f} ± {std:4.1f}  " if len(values) else
                         f"{'-':>16}")
        lines.append(f"{variant:<13}" + "".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def step_times(depth: int = 3, width: int = 256, batch_size: int = 128, in_dim: int = 40,
               n_classes: int = 10, repeats: int = 60, warmup: int = 10, seed: int = 0
               ) -> dict[str, float]:
    """Median milliseconds per training step of the same MLP under different setups.

    The setups (backprop, DNI with a linear and with an MLP synthesizer, cDNI,
    only-the-output-layer) take turns on the same batch, one step each per
    round, in this one process, so background load hits them alike; compare
    the ratios rather than the absolute numbers.
    """
    check_int("depth", depth, 1, 16)
    check_int("width", width, 1, 4096)
    check_int("batch_size", batch_size, 2)
    check_int("repeats", repeats, 1)
    check_int("warmup", warmup, 0)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, in_dim, generator=g)
    y = torch.randint(0, n_classes, (batch_size,), generator=g)
    with seeded(seed):
        init = MLP(in_dim, n_classes, depth, width).state_dict()
    configs = {"backprop": ("backprop", "linear"), "dni_linear": ("dni", "linear"),
               "dni_mlp": ("dni", "mlp"), "cdni_linear": ("cdni", "linear"),
               "no_backprop": ("none", "linear")}
    setups = {}
    for name, (mode, kind) in configs.items():
        with seeded(seed + 1):
            model = MLP(in_dim, n_classes, depth, width)
            model.load_state_dict(init)
            setups[name] = DecoupledMLP(model, mode, n_classes, kind=kind, hidden_dim=width)
    samples: dict[str, list[float]] = {name: [] for name in setups}
    for i in range(warmup + repeats):
        for name, setup in setups.items():
            start = time.perf_counter()
            setup.step(x, y)
            if i >= warmup:
                samples[name].append(time.perf_counter() - start)
    return {name: 1000.0 * float(torch.tensor(s).median()) for name, s in samples.items()}
