"""Two recurrent networks at two timescales, joined by a decoupled neural interface.

A *fast* (lower) LSTM reads one input every step. Every ``m`` steps it sends
a message u (a linear map of its hidden state) to a *slow* (upper) LSTM,
which ticks once on that message and owns the loss. The course's task: the
inputs are random bits and, at each tick, the slow network must say how many
ones arrived since its last tick (``m + 1`` classes). Only the fast network
sees the bits, so only the slow network's error can teach it to count.

Three ways to train the pair, by name (``METHODS``):

* ``"locked"``: truncated BPTT through both networks over a window of ``K``
  slow ticks (``m x K`` fast steps). The fast network gets the slow one's
  error, and updates, once per window: it waits for the slow network's
  backward pass.
* ``"dni"``: a decoupled interface at each message. At every tick the fast
  network asks a synthesizer M(u, c) for dL/du (cDNI: the context c is the
  tick's label) and updates at once; the slow network runs its own truncated
  BPTT over the window, and the true dL/du that it computes for each message
  is the synthesizer's regression target.
* ``"no_signal"``: the ablation. The same run as ``"dni"`` with the synthetic
  gradient switched off, so the fast network never learns (it keeps its
  initial weights) and the slow network must decode whatever it sends.

Per window every method reads the same ``K`` ticks of the same streams; the
rows count windows (slow-network updates) and training seconds.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.tasks import count_chance, count_stream, window_counts
from ..interface import label_context, synthesizer_loss, synthetic_gradient
from ..runner import Result, Row, Settings, lockstep, seeded
from ..synthesizer import KINDS, Synthesizer
from .timeline import Costs
from ..validate import check_bool, check_choice, check_float, check_int, check_methods

METHODS = ("locked", "dni", "no_signal")
ABLATIONS = ("none", "zero_synthetic_gradient", "one_fast_update_per_window")
METHOD_NAMES = {"locked": "locked (BPTT through both)", "dni": "DNI-joined",
                "no_signal": "no signal to the fast network"}
State = tuple[Tensor, Tensor]


class HierarchicalRNN(nn.Module):
    """A fast LSTM that sends a message every ``m`` steps to a slow LSTM that answers.

    The fast network reads (bit, phase) per step, where phase is 1 on the
    first step after a tick. The slow network reads the message into its state
    and, through a linear skip, straight into its readout, so its error
    reaches the message from the first update on.
    """

    def __init__(self, m: int, hidden_dim: int = 32, message_dim: int = 8,
                 slow_dim: int | None = None) -> None:
        super().__init__()
        self.m = check_int("m", m, 1)
        self.hidden_dim = check_int("hidden_dim", hidden_dim, 1)
        self.message_dim = check_int("message_dim", message_dim, 1)
        self.slow_dim = hidden_dim if slow_dim is None else check_int("slow_dim", slow_dim, 1)
        self.fast = nn.LSTMCell(2, hidden_dim)
        self.message = nn.Linear(hidden_dim, message_dim)
        self.slow = nn.LSTMCell(message_dim, self.slow_dim)
        self.readout = nn.Linear(self.slow_dim, m + 1)
        self.skip = nn.Linear(message_dim, m + 1)

    def fast_parameters(self) -> list[nn.Parameter]:
        return [*self.fast.parameters(), *self.message.parameters()]

    def slow_parameters(self) -> list[nn.Parameter]:
        return [*self.slow.parameters(), *self.readout.parameters(), *self.skip.parameters()]

    def initial_states(self, batch_size: int) -> tuple[State, State]:
        """The zero (h, c) of the fast and of the slow network for ``batch_size`` streams."""
        check_int("batch_size", batch_size, 1)
        return tuple((torch.zeros(batch_size, dim), torch.zeros(batch_size, dim))
                     for dim in (self.hidden_dim, self.slow_dim))

    def fast_tick(self, bits: Tensor, state: State) -> tuple[Tensor, State]:
        """Read ``bits [m, B]`` from ``state``; return the message ``[B, message_dim]`` and the state."""
        h, c = state
        for t, bit in enumerate(bits):
            phase = torch.full_like(bit, 1.0 if t == 0 else 0.0)
            h, c = self.fast(torch.stack([bit, phase], dim=1), (h, c))
        return self.message(h), (h, c)

    def slow_tick(self, message: Tensor, state: State) -> tuple[Tensor, State]:
        """One slow tick on ``message``; return the logits ``[B, m + 1]`` and the state."""
        h, c = self.slow(message, state)
        return self.readout(h) + self.skip(message), (h, c)


def _detached(state: State) -> State:
    return state[0].detach(), state[1].detach()


def _accuracy(logits: Tensor, labels: Tensor) -> float:
    """Percent of the batch whose count is right."""
    return 100.0 * float((logits.argmax(dim=1) == labels).float().mean())


def run_window(model: HierarchicalRNN, bits: Tensor, labels: Tensor, fast: State, slow: State
               ) -> tuple[Tensor, float, State, State]:
    """Both networks over one window, in lockstep: the summed loss, the accuracy (percent,
    averaged over ticks) and the two final states."""
    loss, correct = torch.zeros(()), 0.0
    for tick_bits, tick_labels in zip(bits, labels):
        message, fast = model.fast_tick(tick_bits, fast)
        logits, slow = model.slow_tick(message, slow)
        loss = loss + F.cross_entropy(logits, tick_labels)
        correct += _accuracy(logits, tick_labels)
    return loss, correct / len(labels), fast, slow


class LockedTrainer:
    """Truncated BPTT through both networks, one update of each per window of K ticks."""

    def __init__(self, model: HierarchicalRNN, lower_lr: float, upper_lr: float) -> None:
        self.model = model
        self.fast_opt = torch.optim.Adam(model.fast_parameters(), lr=lower_lr)
        self.slow_opt = torch.optim.Adam(model.slow_parameters(), lr=upper_lr)
        self.fast_state: State | None = None
        self.slow_state: State | None = None
        self.fast_updates = 0

    def _states(self, batch_size: int) -> tuple[State, State]:
        if self.fast_state is None or self.fast_state[0].shape[0] != batch_size:
            self.fast_state, self.slow_state = self.model.initial_states(batch_size)
        return _detached(self.fast_state), _detached(self.slow_state)

    def step(self, bits: Tensor, labels: Tensor) -> Row:
        """Train on one window: ``bits [K, m, B]``, ``labels [K, B]``."""
        loss, acc, fast, slow = run_window(self.model, bits, labels, *self._states(bits.shape[2]))
        self.fast_opt.zero_grad()
        self.slow_opt.zero_grad()
        loss.backward()
        self.fast_opt.step()
        self.slow_opt.step()
        self.fast_updates += 1
        self.fast_state, self.slow_state = _detached(fast), _detached(slow)
        return {"train_loss": float(loss.detach()) / len(labels), "train_acc": acc}


class DecoupledTrainer(LockedTrainer):
    """A decoupled interface at every message: the fast network updates at each tick.

    ``sg_scale = 0`` is the ``"no_signal"`` ablation: no synthetic gradient,
    so the fast network is never updated. ``every_tick = False`` is the
    update-rate control: the same synthetic gradients, summed over the window
    and applied in one update at its end, as often as the locked system
    updates. ``seconds`` splits the time spent
    into the fast network's forward and backward (its updates), the slow
    network's forward and backward, and the synthesizer (prediction and
    regression): the per-window costs that ``two_worker_costs`` turns into a
    timeline.
    """

    PARTS = ("fast_forward", "fast_backward", "slow_forward", "slow_backward", "synthesizer")

    def __init__(self, model: HierarchicalRNN, synthesizer: Synthesizer, lower_lr: float,
                 upper_lr: float, synth_lr: float, sg_scale: float = 1.0, every_tick: bool = True) -> None:
        super().__init__(model, lower_lr, upper_lr)
        if synthesizer.dim != model.message_dim:
            raise ValueError(f"synthesizer must predict dL/du for messages of size {model.message_dim}, "
                             f"got dim={synthesizer.dim}")
        self.synthesizer = synthesizer
        self.synth_opt = torch.optim.Adam(synthesizer.parameters(), lr=synth_lr)
        self.sg_scale = check_float("sg_scale", sg_scale, 0.0)
        self.every_tick = check_bool("every_tick", every_tick)
        self.seconds = dict.fromkeys(self.PARTS, 0.0)
        self.windows = 0

    def _context(self, labels: Tensor) -> Tensor | None:
        if not self.synthesizer.context_dim:
            return None
        return label_context(labels, self.synthesizer.context_dim)

    def _timed(self, part: str, start: float) -> float:
        now = time.perf_counter()
        self.seconds[part] += now - start
        return now

    def _update_fast(self) -> None:
        self.fast_opt.step()
        self.fast_updates += 1

    def step(self, bits: Tensor, labels: Tensor) -> Row:
        """Train on one window: the fast network tick by tick, then the slow network."""
        fast, slow = self._states(bits.shape[2])
        messages, contexts = [], []
        self.fast_opt.zero_grad()      # the control sums the window's gradients
        t = time.perf_counter()
        for tick_bits, tick_labels in zip(bits, labels):
            message, fast = self.model.fast_tick(tick_bits, fast)
            t = self._timed("fast_forward", t)
            context = self._context(tick_labels)
            if self.sg_scale > 0:      # update now, from the predicted dL/du
                synthetic = self.sg_scale * synthetic_gradient(self.synthesizer, message, context)
                t = self._timed("synthesizer", t)
                if self.every_tick:
                    self.fast_opt.zero_grad()
                (message * synthetic).sum().backward()
                if self.every_tick:
                    self._update_fast()
                t = self._timed("fast_backward", t)
            fast = _detached(fast)
            messages.append(message.detach().requires_grad_())
            contexts.append(context)
        if self.sg_scale > 0 and not self.every_tick:     # the control: one update per window
            self._update_fast()
            t = self._timed("fast_backward", t)
        loss, correct = 0.0, 0.0
        for message, tick_labels in zip(messages, labels):
            logits, slow = self.model.slow_tick(message, slow)
            loss = loss + F.cross_entropy(logits, tick_labels)
            correct += _accuracy(logits, tick_labels)
        t = self._timed("slow_forward", t)
        self.slow_opt.zero_grad()
        loss.backward()                # also fills message.grad: the true dL/du
        self.slow_opt.step()
        t = self._timed("slow_backward", t)
        row = {"train_loss": float(loss.detach()) / len(labels), "train_acc": correct / len(labels)}
        if self.sg_scale > 0:          # the true gradients arrive: regress on them
            synth_loss = sum(synthesizer_loss(self.synthesizer, message, message.grad, context)
                             for message, context in zip(messages, contexts)) / len(messages)
            self.synth_opt.zero_grad()
            synth_loss.backward()
            self.synth_opt.step()
            row["synth_loss"] = float(synth_loss.detach())
            self._timed("synthesizer", t)
        self.fast_state, self.slow_state = fast, _detached(slow)
        self.windows += 1
        return row


@dataclass(frozen=True)
class HierarchySettings(Settings):
    """Notebook 08's experiment: the locked, the DNI-joined and the no-signal system side by side.

    ``m``: fast steps per slow tick; ``K``: the slow network's truncation in
    ticks (one window, one slow update); ``hidden_dim``: units of the fast LSTM;
    ``slow_dim``: units of the slow LSTM (a wider slow network costs more per tick);
    ``message_dim``: size of the message u; ``kind``: the synthesizer;
    ``context``: cDNI (the tick's label as the synthesizer's context);
    ``sg_scale``: factor on the synthetic gradient; ``lower_lr``,
    ``upper_lr``, ``synth_lr``: Adam rates of the fast network, the slow
    network and the synthesizer; ``windows``: the budget, in windows;
    ``target``: the test accuracy (percent) that counts as solved (for
    windows-to-target). ``ablation``: ``"zero_synthetic_gradient"`` switches the
    DNI-joined system's synthetic gradient off (it becomes the no-signal system);
    ``"one_fast_update_per_window"`` keeps it but applies it once per window,
    as often as the locked system updates (the update-rate control).
    """

    m: int = 4
    K: int = 16
    hidden_dim: int = 32
    slow_dim: int = 32
    message_dim: int = 8
    kind: str = "linear"
    context: bool = True
    sg_scale: float = 1.0
    lower_lr: float = 3e-3
    upper_lr: float = 3e-3
    synth_lr: float = 1e-3
    windows: int = 200
    batch_size: int = 32
    seed: int = 0
    log_every: int = 5
    target: float = 97.0
    methods: tuple[str, ...] = METHODS
    ablation: str = "none"

    def validate(self) -> None:
        check_int("m", self.m, 1, 16)
        check_int("K", self.K, 1, 64)
        check_int("hidden_dim", self.hidden_dim, 1)
        check_int("slow_dim", self.slow_dim, 1)
        check_int("message_dim", self.message_dim, 1)
        check_choice("kind", self.kind, KINDS)
        check_bool("context", self.context)
        check_float("sg_scale", self.sg_scale, 0.0)
        check_float("lower_lr", self.lower_lr, 0.0, low_open=True)
        check_float("upper_lr", self.upper_lr, 0.0, low_open=True)
        check_float("synth_lr", self.synth_lr, 0.0, low_open=True)
        check_int("windows", self.windows, 1)
        check_int("batch_size", self.batch_size, 1)
        check_int("seed", self.seed, 0)
        check_int("log_every", self.log_every, 1)
        check_float("target", self.target, 0.0, 100.0)
        check_choice("ablation", self.ablation, ABLATIONS)
        check_methods(self.methods, METHODS)


def make_trainer(method: str, settings: HierarchySettings) -> LockedTrainer:
    """A fresh system (weights fixed by ``settings.seed``, the same for every method) and its trainer."""
    check_choice("method", method, METHODS)
    s = settings
    with seeded(s.seed):
        model = HierarchicalRNN(s.m, s.hidden_dim, s.message_dim, s.slow_dim)
        synth = Synthesizer(s.message_dim, context_dim=(s.m + 1) if s.context else 0, kind=s.kind)
    if method == "locked":
        return LockedTrainer(model, s.lower_lr, s.upper_lr)
    signal = method == "dni" and s.ablation != "zero_synthetic_gradient"
    return DecoupledTrainer(model, synth, s.lower_lr, s.upper_lr, s.synth_lr, s.sg_scale if signal else 0.0,
                            every_tick=s.ablation != "one_fast_update_per_window")


@torch.no_grad()
def evaluate(model: HierarchicalRNN, bits: Tensor, labels: Tensor) -> float:
    """Test accuracy (percent) at the slow ticks of fresh streams, from the zero state."""
    return run_window(model, bits, labels, *model.initial_states(bits.shape[2]))[1]


def hierarchy_experiment(settings: HierarchySettings | None = None, **overrides) -> Iterator[Row]:
    """Train the ``methods`` side by side on the window-count task.

    All start from the same weights and read the same streams, one window of
    ``K`` ticks per step. Every ``log_every`` windows a row holds the test
    accuracy in percent (``acc/<m>``, 256 fresh streams of 32 ticks), the training loss
    and accuracy, the fast network's updates so far (``fast_updates/<m>``),
    the cumulative training seconds, ``ticks`` (slow ticks read) and
    ``chance`` (percent of windows holding the most frequent count). Returns a ``Result``.
    """
    s = HierarchySettings.build(settings, **overrides)
    g = torch.Generator().manual_seed(s.seed + 1)
    test_bits = count_stream(32, s.m, 256, torch.Generator().manual_seed(10_000 + s.seed))
    test_labels = window_counts(test_bits)
    trainers = {m: make_trainer(m, s) for m in s.methods}
    chance = 100.0 * count_chance(s.m)

    def windows() -> Iterator[tuple[Tensor, Tensor]]:
        while True:
            bits = count_stream(s.K, s.m, s.batch_size, g)
            yield bits, window_counts(bits)

    result: Result = yield from lockstep(
        trainers, windows(), s.windows, s.log_every,
        lambda name, t: {"acc": evaluate(t.model, test_bits, test_labels),
                         "fast_updates": t.fast_updates},
        header=lambda step: {"ticks": step * s.K, "chance": chance}, timed=True, settings=s)
    return result


def windows_to_target(rows: list[Row], method: str, target: float) -> int | None:
    """The first logged window at which ``method``'s test accuracy reached ``target`` percent
    (None: never)."""
    check_float("target", target, 0.0, 100.0)
    for row in rows:
        if row.get(f"acc/{method}", 0.0) >= target:
            return int(row["step"])
    return None


def two_worker_costs(trainer: DecoupledTrainer) -> Costs:
    """Notebook 00's ``Costs`` for the pair on two workers (fast network on worker 1, slow on
    worker 2), in measured seconds per window of the DNI run: forward, backward with updates,
    and the fast network's synthesizer."""
    if not isinstance(trainer, DecoupledTrainer) or trainer.windows == 0:
        raise ValueError("trainer must be a DecoupledTrainer that has trained at least one window")
    per = {part: seconds / trainer.windows for part, seconds in trainer.seconds.items()}
    return Costs([per["fast_forward"], per["slow_forward"]],
                 [per["fast_backward"], per["slow_backward"]], [per["synthesizer"], 0.0])
