"""Truncated BPTT with a decoupled neural interface at the truncation boundary.

An LSTM reads a long sequence in chunks of T steps; the state (h, c) is
carried from chunk to chunk, but backprop stops at each chunk's start, so no
loss can teach the core anything about dependencies longer than T steps.

DNI bridges the cut in time (Jaderberg et al. 2016, section 3.1). A
synthesizer M looks at the recurrent state s = (h, c):

* at each chunk's **last** state s_T it predicts the gradient of all future
  losses, and that prediction, scaled by ``sg_scale`` (0.1 as in the paper's
  code lineage), is injected into backprop as if it had come from the future;
* at each chunk's **first** state s_0 the true gradient arrives from the
  chunk's own losses *plus* the synthetic gradient injected at its end: a
  bootstrapped target, like a TD target, toward which M(s_0) is regressed.

The synthesizer is ``dni_lite.Synthesizer`` on the ``2 x hidden`` vector
(h, c), in the same per-example units as everywhere in dni_lite (batch size x
dL/ds of the batch-mean loss). The feed-forward ``DecoupledInterface`` is not
used: here the cut's two ends are the end of one update and the start of the
next, so the prediction is injected and the target read in the same step,
through the same functions (``synthetic_gradient``, ``synthesizer_loss``),
each called with the state its gradient belongs to.

``aux_weight > 0`` adds the paper's auxiliary-task variant: a linear head on
every hidden state of the chunk is trained to predict the synthetic gradient
the chunk will receive at its end, and that extra loss shapes the core. It is
backpropagated separately, after the synthesizer's target has been read, so
the target holds only the task's losses and the injected future.

Variants by name (``METHODS``): ``"bptt"`` (plain truncation), ``"dni"``
(bootstrapped target), ``"dni_one_chunk"`` (the synthesizer regresses on the
chunk's own gradient only, so it can never predict more than one chunk ahead),
``"dni_noise"`` (the control for the injection itself: random noise of the
same size as the synthetic gradient is injected instead) and, for streams, ``"bptt_long"`` (plain truncation with a long window).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.tasks import (Corpus, Curriculum, SequenceBatch, batchify, copy_batch, load_corpus,
                          planted_entropy, planted_stream, repeat_copy_batch, symbol_batch)
from ..interface import per_example, synthesizer_loss, synthetic_gradient
from ..runner import Result, Row, Settings, lockstep, seeded
from ..synthesizer import KINDS, Synthesizer
from ..validate import check_bool, check_choice, check_float, check_int, check_methods

LOSSES = ("bits", "categorical")
METHODS = ("bptt", "dni", "dni_one_chunk", "dni_noise", "bptt_long")
METHOD_NAMES = {"bptt": "BPTT(T)", "dni": "DNI(T)", "dni_one_chunk": "DNI(T), one-chunk target",
                "dni_noise": "noise at the boundary", "bptt_long": "BPTT(long T)"}
LN2 = math.log(2.0)


class RecurrentCore(nn.Module):
    """An LSTM cell with a linear readout; the state is one tensor ``[B, 2 x hidden]`` = (h, c).

    With ``aux=True`` it also has a head that predicts, from each h_t, the
    synthetic gradient for the state (the auxiliary task).
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, aux: bool = False) -> None:
        super().__init__()
        self.input_dim = check_int("input_dim", input_dim, 1)
        self.hidden_dim = check_int("hidden_dim", hidden_dim, 1)
        self.output_dim = check_int("output_dim", output_dim, 1)
        self.cell = nn.LSTMCell(input_dim, hidden_dim)
        with torch.no_grad():   # forget-gate bias 1: remember by default (Gers et al. 2000)
            self.cell.bias_ih[hidden_dim:2 * hidden_dim] = 1.0
            self.cell.bias_hh[hidden_dim:2 * hidden_dim] = 0.0
        self.readout = nn.Linear(hidden_dim, output_dim)
        self.aux_head = nn.Linear(hidden_dim, 2 * hidden_dim) if check_bool("aux", aux) else None

    @property
    def state_dim(self) -> int:
        return 2 * self.hidden_dim

    def initial_state(self, batch_size: int) -> Tensor:
        """The zero state (h, c) for ``batch_size`` sequences."""
        return torch.zeros(check_int("batch_size", batch_size, 1), self.state_dim)

    def forward(self, inputs: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Run ``inputs [T, B, input_dim]`` from ``state``.

        Returns the readouts ``[T, B, output_dim]``, the hidden states
        ``[T, B, hidden]`` and the final state ``[B, 2 x hidden]``.
        """
        h, c = state.split(self.hidden_dim, dim=1)
        hs = []
        for x in inputs:
            h, c = self.cell(x, (h, c))
            hs.append(h)
        hiddens = torch.stack(hs)
        return self.readout(hiddens), hiddens, torch.cat([h, c], dim=1)


def sequence_loss(outputs: Tensor, targets: Tensor, mask: Tensor, loss: str = "bits"
                  ) -> tuple[Tensor, float]:
    """Masked loss in bits, summed over time and averaged over the batch.

    ``"bits"``: binary cross-entropy of each output bit, summed over bits;
    ``"categorical"``: cross-entropy of the next symbol. Returns the loss to
    backpropagate and the mean bits per counted step (``nan`` if none counts).
    """
    check_choice("loss", loss, LOSSES)
    if loss == "bits":
        per_step = F.binary_cross_entropy_with_logits(outputs, targets, reduction="none").sum(-1)
    else:
        per_step = F.cross_entropy(outputs.flatten(0, 1), targets.flatten(),
                                   reduction="none").view(targets.shape)
    per_step = per_step / LN2 * mask
    counted = float(mask.sum())
    per_step_mean = float(per_step.sum().detach()) / counted if counted else float("nan")
    return per_step.sum() / mask.shape[1], per_step_mean


class TruncatedBPTT:
    """Train a ``RecurrentCore`` chunk by chunk, optionally with DNI at the boundary.

    Args:
        core: the LSTM core.
        T: truncation window (steps per chunk).
        synthesizer: ``Synthesizer(core.state_dim)``; ``None`` is plain truncated BPTT.
        sg_scale: factor on the synthetic gradient injected at each chunk's end.
        lr: Adam learning rate of the core.
        synth_lr: Adam learning rate of the synthesizer.
        aux_weight: weight of the auxiliary task (needs ``core`` built with ``aux=True``).
        loss: ``"bits"`` (bit vectors) or ``"categorical"`` (symbols).
        clip: clip the core's gradient norm to this (``None``: no clipping).
        bootstrap: regress the synthesizer on the bootstrapped target (the chunk's
            losses plus the injected synthetic gradient); ``False`` is the
            ``"no_bootstrap"`` ablation: the chunk's own gradient alone.
        noise: inject Gaussian noise with the synthetic gradient's per-example
            norm instead of the synthetic gradient (the ``"dni_noise"`` control),
            drawn from this generator; ``None``: inject the prediction.
    """

    def __init__(self, core: RecurrentCore, T: int, synthesizer: Synthesizer | None = None,
                 sg_scale: float = 0.1, lr: float = 3e-3, synth_lr: float = 1e-3,
                 aux_weight: float = 0.0, loss: str = "bits", clip: float | None = None,
                 bootstrap: bool = True, noise: torch.Generator | None = None) -> None:
        if not isinstance(core, RecurrentCore):
            raise ValueError(f"core must be a RecurrentCore, got {type(core).__name__}")
        self.core = core
        self.T = check_int("T", T, 1)
        if synthesizer is not None:
            if not isinstance(synthesizer, Synthesizer) or synthesizer.dim != core.state_dim \
                    or synthesizer.context_dim:
                raise ValueError(f"synthesizer must be a Synthesizer(dim={core.state_dim}) "
                                 "without context, or None for plain truncated BPTT")
        self.synthesizer = synthesizer
        self.sg_scale = check_float("sg_scale", sg_scale, 0.0)
        check_float("lr", lr, 0.0, low_open=True)
        check_float("synth_lr", synth_lr, 0.0, low_open=True)
        self.aux_weight = check_float("aux_weight", aux_weight, 0.0)
        if self.aux_weight > 0 and (core.aux_head is None or synthesizer is None):
            raise ValueError("aux_weight > 0 needs a synthesizer and a core built with aux=True")
        self.loss = check_choice("loss", loss, LOSSES)
        self.clip = None if clip is None else check_float("clip", clip, 0.0, low_open=True)
        self.bootstrap = check_bool("bootstrap", bootstrap)
        if noise is not None and not isinstance(noise, torch.Generator):
            raise ValueError(f"noise must be a torch.Generator or None, got {type(noise).__name__}")
        self.noise = noise
        self.opt = torch.optim.Adam(core.parameters(), lr=lr)
        self.synth_opt = (torch.optim.Adam(synthesizer.parameters(), lr=synth_lr)
                          if synthesizer is not None else None)
        self.state: Tensor | None = None
        self.last_target: Tensor | None = None   # bootstrapped target at the last chunk's start

    def reset(self, batch_size: int) -> None:
        """Start new sequences from the zero state."""
        self.state = self.core.initial_state(batch_size)

    def train_chunk(self, inputs: Tensor, targets: Tensor, mask: Tensor,
                    inject: bool = True) -> dict[str, float]:
        """One truncated-BPTT update on one chunk; the state carries over to the next.

        With a synthesizer and ``inject=True`` the synthetic gradient of the
        future is added at the chunk's last state (pass ``inject=False`` when
        the sequence ends here: it has no future). The synthesizer is then
        regressed at the chunk's first state toward the bootstrapped target.
        Returns the chunk's bits per counted step, the synthesizer loss and,
        for the auxiliary task, its loss.
        """
        if self.state is None or self.state.shape[0] != inputs.shape[1]:
            self.reset(inputs.shape[1])
        dni = self.synthesizer is not None
        s0 = self.state.detach().requires_grad_(dni)
        outputs, hiddens, s_end = self.core(inputs, s0)
        total, bits = sequence_loss(outputs, targets, mask, self.loss)
        row = {"bits": bits}
        own = None                                 # the one-chunk target of the ablation
        if dni and not self.bootstrap:
            (own,) = torch.autograd.grad(total, s0, retain_graph=True)
        if dni and inject and self.sg_scale > 0:   # the future's gradient, predicted at s_T
            synthetic = self.sg_scale * synthetic_gradient(self.synthesizer, s_end)
            if self.noise is not None:             # the control: the same size, no information
                noise = torch.randn(synthetic.shape, generator=self.noise)
                synthetic = noise * synthetic.norm(dim=1, keepdim=True) / noise.norm(dim=1, keepdim=True)
            total = total + (s_end * synthetic).sum()
        aux_loss = None
        if dni and self.aux_weight > 0:
            aux = self.core.aux_head(hiddens)
            prediction = self.synthesizer(s_end.detach()).detach()
            aux_loss = F.mse_loss(aux, prediction.expand_as(aux))
            row["aux_loss"] = float(aux_loss.detach())
        self.opt.zero_grad()
        total.backward(retain_graph=aux_loss is not None)
        target = None
        if dni:                                    # bootstrapped: chunk losses + injected SG
            target = s0.grad.clone() if own is None else own
        if aux_loss is not None:                   # after the target is read: no leak into it
            (self.aux_weight * aux_loss).backward()
        if self.clip is not None:
            nn.utils.clip_grad_norm_(self.core.parameters(), self.clip)
        self.opt.step()
        if dni:
            synth_loss = synthesizer_loss(self.synthesizer, s0, target)
            self.synth_opt.zero_grad()
            synth_loss.backward()
            self.synth_opt.step()
            row["synth_loss"] = float(synth_loss.detach())
            self.last_target = per_example(target).detach()
        self.state = s_end.detach()
        return row

    def train_sequence(self, batch: SequenceBatch, carry: bool = False) -> dict[str, float]:
        """Train on a whole batch of sequences chunk by chunk.

        ``carry=False`` starts from the zero state and injects no synthetic
        gradient at the very end (an episode); ``carry=True`` continues from
        the current state and injects at the end too (a stream). Returns the
        bits per counted step over the whole sequence and the mean
        synthesizer loss.
        """
        if not carry:
            self.reset(batch.inputs.shape[1])
        bits_sum, counted, synth = 0.0, 0.0, []
        length = len(batch)
        for start in range(0, length, self.T):
            end = min(start + self.T, length)
            row = self.train_chunk(batch.inputs[start:end], batch.targets[start:end],
                                   batch.mask[start:end], inject=carry or end < length)
            n = float(batch.mask[start:end].sum())
            if n:
                bits_sum += row["bits"] * n
                counted += n
            if "synth_loss" in row:
                synth.append(row["synth_loss"])
        out = {"bits": bits_sum / counted if counted else float("nan")}
        if synth:
            out["synth_loss"] = sum(synth) / len(synth)
        return out

    @torch.no_grad()
    def evaluate(self, batch: SequenceBatch) -> float:
        """Bits per counted step on ``batch`` from the zero state, without training."""
        outputs, _, _ = self.core(batch.inputs, self.core.initial_state(batch.inputs.shape[1]))
        return sequence_loss(outputs, batch.targets, batch.mask, self.loss)[1]


@dataclass(frozen=True)
class RecurrentSettings(Settings):
    """The LSTM core, its synthesizer and its training budget, shared by notebooks 05 and 06.

    ``T``: truncation window; ``sg_scale``: factor on the synthetic gradient
    injected at each chunk's end; ``lr``, ``synth_lr``: Adam rates of the core
    and the synthesizer; ``aux``: the auxiliary task; ``steps``: training
    batches per method. ``ablation``: ``"no_bootstrap"`` regresses the
    synthesizer on the chunk's own gradient, without the injected future (the
    ``"dni"`` variant becomes ``"dni_one_chunk"``).
    """

    T: int = 3
    hidden_dim: int = 32
    kind: str = "linear"
    sg_scale: float = 0.1
    lr: float = 1e-2
    synth_lr: float = 1e-2
    aux: bool = False
    steps: int = 800
    batch_size: int = 64
    seed: int = 0
    log_every: int = 20
    ablation: str = "none"

    def validate(self) -> None:
        check_int("T", self.T, 1)
        check_int("hidden_dim", self.hidden_dim, 1)
        check_choice("kind", self.kind, KINDS)
        check_float("sg_scale", self.sg_scale, 0.0)
        check_float("lr", self.lr, 0.0, low_open=True)
        check_float("synth_lr", self.synth_lr, 0.0, low_open=True)
        check_bool("aux", self.aux)
        check_int("steps", self.steps, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("seed", self.seed, 0)
        check_int("log_every", self.log_every, 1)
        check_choice("ablation", self.ablation, ("none", "no_bootstrap"))


def make_trainer(input_dim: int, output_dim: int, T: int, method: str,
                 settings: RecurrentSettings, loss: str = "bits") -> TruncatedBPTT:
    """A fresh core (weights fixed by ``settings.seed``) with a BPTT or DNI trainer.

    ``method``: ``"bptt"`` (plain truncation), ``"dni"`` (synthesizer at the
    boundary, bootstrapped target; ``settings.aux`` adds the auxiliary task with
    weight 1), ``"dni_one_chunk"`` (the same, regressed on the chunk's own
    gradient only) or ``"dni_noise"`` (noise of the synthetic gradient's size
    injected instead of it).
    """
    check_choice("method", method, METHODS[:4])
    s = settings
    dni = method != "bptt"
    with seeded(s.seed):
        core = RecurrentCore(input_dim, s.hidden_dim, output_dim, aux=s.aux and dni)
        synth = Synthesizer(core.state_dim, kind=s.kind) if dni else None
    return TruncatedBPTT(core, T, synth, sg_scale=s.sg_scale, lr=s.lr, synth_lr=s.synth_lr,
                         aux_weight=1.0 if s.aux and dni else 0.0, loss=loss,
                         bootstrap=method != "dni_one_chunk" and s.ablation != "no_bootstrap",
                         noise=torch.Generator().manual_seed(s.seed + 2) if method == "dni_noise" else None)


# -- copy / repeat copy with the curriculum -------------------------------------------
TASKS = ("copy", "repeat_copy")


@dataclass(frozen=True)
class CopySettings(RecurrentSettings):
    """Notebook 05's experiment: BPTT(T), DNI(T) and its control on copy or repeat copy.

    ``bits``: width of the copied patterns; ``methods``: any of ``"bptt"``,
    ``"dni"``, ``"dni_one_chunk"`` and ``"dni_noise"`` (the control: noise of
    the synthetic gradient's size at the boundary). The other fields are
    ``RecurrentSettings``'.
    """

    hidden_dim: int = 64
    steps: int = 2000
    task: str = "copy"
    bits: int = 2
    methods: tuple[str, ...] = ("bptt", "dni", "dni_noise")

    def validate(self) -> None:
        super().validate()
        check_choice("task", self.task, TASKS)
        check_int("bits", self.bits, 1)
        check_methods(self.methods, METHODS[:4])


class CopyTrainer:
    """One method on the copy task: its own curriculum and its own seeded batches."""

    MAX_REPEATS = 3

    def __init__(self, bptt: TruncatedBPTT, s: CopySettings) -> None:
        self.bptt, self.s = bptt, s
        self.curriculum = Curriculum()
        self.generator = torch.Generator().manual_seed(s.seed + 1)

    @property
    def core(self) -> RecurrentCore:
        return self.bptt.core

    def step(self) -> Row:
        s, level, g = self.s, self.curriculum.level, self.generator
        if s.task == "copy":
            batch = copy_batch(level, s.batch_size, s.bits, g)
        else:
            repeats = int(torch.randint(1, self.MAX_REPEATS + 1, (1,), generator=g))
            batch = repeat_copy_batch(level, repeats, s.batch_size, s.bits, self.MAX_REPEATS, g)
        bits = self.bptt.train_sequence(batch)["bits"]
        if math.isfinite(bits):
            self.curriculum.update(bits)
        return {"train_bits": bits}


def copy_experiment(settings: CopySettings | None = None, **overrides) -> Iterator[Row]:
    """Train the ``methods`` (BPTT(T), DNI(T), the control) on copy or repeat copy, each with its
    own curriculum.

    All start from the same weights; each sees ``steps`` training batches
    drawn at its own current length (the curriculum: start at 1, grow when the
    mean error of the last 10 batches is below 0.15 bits per output step).
    Yields, per method, the longest length solved (``solved/<m>``), the mean
    training error in bits per output step (``train_bits/<m>``) and the
    cumulative training seconds (``seconds/<m>``) every ``log_every`` steps;
    returns a ``Result`` (``final("solved")``: the longest length solved).
    """
    s = CopySettings.build(settings, **overrides)
    in_dim = s.bits + 1 + (s.task == "repeat_copy")
    trainers = {m: CopyTrainer(make_trainer(in_dim, s.bits, s.T, m, s), s) for m in s.methods}
    result: Result = yield from lockstep(
        trainers, itertools.repeat(()), s.steps, s.log_every,
        lambda name, t: {"solved": t.curriculum.longest_solved}, timed=True, settings=s)
    return result


# -- streams: the planted dependency and character language modelling ------------------
@dataclass(frozen=True)
class StreamSettings(RecurrentSettings):
    """Notebook 06's experiment: next-symbol prediction on a stream, state carried forever.

    ``task``: ``"planted"`` (the k-back dependency with a known floor; ``k``,
    ``noise``, ``vocab``), a shipped corpus name (``"shakespeare"``) or a path
    to a text file (``max_chars``: read only that many). ``methods``: any of
    BPTT(T), DNI(T), DNI(T) with the one-chunk target and BPTT(``long_T``).
    """

    T: int = 2
    lr: float = 3e-3
    steps: int = 300
    batch_size: int = 32
    task: str = "planted"
    long_T: int = 6
    k: int = 3
    noise: float = 0.1
    vocab: int = 4
    methods: tuple[str, ...] = ("bptt", "dni", "bptt_long")
    max_chars: int | None = None

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.task, str) or not self.task:
            raise ValueError(f"task must be 'planted', a corpus name or a file path, got {self.task!r}")
        check_int("long_T", self.long_T, 1)
        check_int("k", self.k, 1)
        if self.task == "planted" and self.k >= self.long_T:
            raise ValueError(f"the dependency k must be smaller than the long window long_T "
                             f"(got k={self.k}, long_T={self.long_T}): the first segment of "
                             f"{self.long_T} symbols would hold no prediction to score")
        check_float("noise", self.noise, 0.0, 1.0)
        check_int("vocab", self.vocab, 2)
        check_methods(self.methods, METHODS)
        if self.max_chars is not None:
            check_int("max_chars", self.max_chars, 100)


class StreamTrainer:
    """One method on a stream: trains on each segment, carrying its state."""

    def __init__(self, bptt: TruncatedBPTT) -> None:
        self.bptt = bptt

    @property
    def core(self) -> RecurrentCore:
        return self.bptt.core

    def step(self, batch: SequenceBatch) -> Row:
        return {"train_bits": self.bptt.train_sequence(batch, carry=True)["bits"]}


def stream_experiment(settings: StreamSettings | None = None, **overrides) -> Iterator[Row]:
    """Next-symbol prediction on a stream for the variants in ``methods``, side by side.

    Every method reads the same ``batch_size`` parallel streams, ``long_T``
    symbols per step (cut into its own chunks of T or long_T), so all have seen
    the same characters at each step. Yields validation bits per symbol
    (``val_bits/<m>``), training bits and cumulative training seconds per
    method every ``log_every`` steps, and ``floor`` for the planted task.
    Returns a ``Result`` whose ``data`` is the corpus (``None`` when planted).
    """
    s = StreamSettings.build(settings, **overrides)
    g = torch.Generator().manual_seed(s.seed + 1)
    header: Row = {}
    corpus = None
    if s.task == "planted":
        n_symbols, start = s.vocab, s.k + 1
        train = planted_stream(s.steps * s.long_T + 1, s.batch_size, s.k, s.noise, s.vocab, g)
        valid = planted_stream(400, 64, s.k, s.noise, s.vocab,
                               torch.Generator().manual_seed(10_000 + s.seed))
        header["floor"] = planted_entropy(s.vocab, s.noise)
    else:
        corpus = load_corpus(s.task, max_chars=s.max_chars)
        n_symbols, start = corpus.vocab, 0
        train = batchify(corpus.train, s.batch_size)
        if train.shape[0] < s.steps * s.long_T + 1:
            raise ValueError(f"steps={s.steps} x long_T={s.long_T} needs {s.steps * s.long_T + 1} "
                             f"symbols per stream; the corpus has {train.shape[0]}")
        valid = batchify(corpus.valid, 64)[:401]
    valid_batch = symbol_batch(valid, n_symbols, start)
    trainers = {}
    for m in s.methods:
        bptt = make_trainer(n_symbols, n_symbols, s.long_T if m == "bptt_long" else s.T,
                            "bptt" if m == "bptt_long" else m, s, "categorical")
        bptt.reset(s.batch_size)
        trainers[m] = StreamTrainer(bptt)

    def segments() -> Iterator[tuple[SequenceBatch]]:
        for step in range(1, s.steps + 1):
            segment = train[(step - 1) * s.long_T: step * s.long_T + 1]
            yield (symbol_batch(segment, n_symbols, start if step == 1 else 0),)

    result: Result = yield from lockstep(
        trainers, segments(), s.steps, s.log_every,
        lambda name, t: {"val_bits": t.bptt.evaluate(valid_batch)},
        header=lambda step: {"chars": step * s.long_T * s.batch_size, **header},
        timed=True, data=corpus, settings=s)
    return result


@torch.no_grad()
def sample(core: RecurrentCore, corpus: Corpus, prime: str = "\n", length: int = 200,
           temperature: float = 0.8, seed: int = 0) -> str:
    """Generate ``length`` characters from ``core`` after reading ``prime``."""
    check_int("length", length, 1)
    check_float("temperature", temperature, 0.0, low_open=True)
    check_int("seed", seed, 0)
    if not prime:
        raise ValueError("prime must be a non-empty string")
    g = torch.Generator().manual_seed(seed)
    tokens = corpus.encode(prime)
    state = core.initial_state(1)
    logits, _, state = core(F.one_hot(tokens, corpus.vocab).float()[:, None], state)
    out = []
    for _ in range(length):
        probs = torch.softmax(logits[-1, 0] / temperature, dim=0)
        nxt = int(torch.multinomial(probs, 1, generator=g))
        out.append(nxt)
        x = F.one_hot(torch.tensor([nxt]), corpus.vocab).float()[None]
        logits, _, state = core(x, state)
    return corpus.decode(out)
