"""Who waits for whom: an event simulator of locked and unlocked training.

A network of K modules runs on K workers (module i on worker i) over a
stream of minibatches. Five training schemes differ only in which tasks
must wait for a message from another worker:

* ``"backprop"``: forward, update and backward locked. Module i runs its
  forward when module i-1's output arrives, its backward when module i+1's
  gradient arrives, and starts the next minibatch only after its update.
* ``"gpipe"`` (pipeline-parallel backprop, Huang et al. 2019): each
  minibatch is cut into M micro-batches that flow up the pipeline one after
  the other, then all their backwards flow down; every module updates once
  per minibatch (a *flush*), with exact gradients. Only the fill and the
  drain idle the workers: a bubble of (K-1)/(M+K-1) of each step.
* ``"1f1b"`` (PipeDream-flush, Narayanan et al. 2021): the same micro-batches
  and flush, but each worker starts a micro-batch's backward as soon as it
  can, alternating one forward and one backward. Same bubble as GPipe at
  equal costs, but at most K micro-batches' activations are held at once.
* ``"decoupled"`` (update-decoupled, DNI): module i (i < K) asks its synthesizer for
  dL/dh right after its forward, runs its backward with that synthetic
  gradient and is free for the next minibatch. Forwards are still locked:
  module i needs module i-1's output for the same minibatch.
* ``"unlocked"`` (complete unlocking): module i (i > 1) also predicts its own
  input with a synthetic-input model, so no task waits for another worker.
  The real inputs and gradients still travel, but only as regression
  targets, which never block.

Each synthesizer (gradient or input) costs ``synth[i]`` per minibatch on the
worker of module i, prediction and regression together; the synthesizers sit
on the same worker as the module they serve, so using them costs no message.
Every message between neighbouring workers takes ``delay``. A micro-batch
costs 1/M of its minibatch's forward and backward (ideal splitting; real
small micro-batches use a CPU or GPU less well) and each of its messages
takes the full ``delay``.

The simulator is deterministic: each worker runs its tasks in a fixed order,
each task starting as soon as its worker is free and its inputs have arrived.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ..runner import Settings
from ..validate import check_choice, check_float, check_int

MODES = ("backprop", "gpipe", "1f1b", "decoupled", "unlocked")
MODE_NAMES = {"backprop": "backprop", "gpipe": "pipeline backprop (GPipe)",
              "1f1b": "pipeline backprop (1F1B)", "decoupled": "update-decoupled (DNI)",
              "unlocked": "complete unlocking"}
PIPELINES = ("gpipe", "1f1b")


@dataclass(frozen=True)
class Costs:
    """Per-module costs (any time unit) and the delay of one message.

    Args:
        forward: forward time of each module; its length is K.
        backward: backward + update time of each module (length K).
        synth: time of one synthesizer of each module (length K).
        delay: time for a message (activation or gradient) between neighbours.
    """

    forward: tuple[float, ...]
    backward: tuple[float, ...]
    synth: tuple[float, ...]
    delay: float = 0.0

    def __init__(self, forward: Sequence[float], backward: Sequence[float],
                 synth: Sequence[float] | float = 0.0, delay: float = 0.0) -> None:
        forward = _costs("forward", forward)
        k = len(forward)
        backward = _costs("backward", backward)
        if len(backward) != k:
            raise ValueError(f"backward must have one cost per module ({k}), got {len(backward)}")
        if isinstance(synth, (int, float)) and not isinstance(synth, bool):
            synth = [synth] * k
        synth = _costs("synth", synth)
        if len(synth) != k:
            raise ValueError(f"synth must be a number or one cost per module ({k}), "
                             f"got {len(synth)}")
        object.__setattr__(self, "forward", forward)
        object.__setattr__(self, "backward", backward)
        object.__setattr__(self, "synth", synth)
        object.__setattr__(self, "delay", check_float("delay", delay, 0.0))

    @classmethod
    def uniform(cls, modules: int, forward: float = 1.0, backward: float = 2.0,
                synth: float = 0.0, delay: float = 0.0) -> "Costs":
        """K identical modules."""
        check_int("modules", modules, 1, 64)
        return cls([forward] * modules, [backward] * modules, synth, delay)

    @property
    def modules(self) -> int:
        """K, the number of modules (and workers)."""
        return len(self.forward)


@dataclass(frozen=True)
class Interval:
    """One task: ``worker`` (0-based) busy with ``kind`` for ``minibatch`` on [start, end)."""

    worker: int
    kind: str
    minibatch: int
    start: float
    end: float
    micro: int = 0          # the micro-batch, for the pipeline-parallel schemes

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass
class Timeline:
    """The simulated schedule of one training scheme.

    ``intervals`` holds every task, ``makespan`` the time the last one ends,
    ``busy`` and ``idle_fraction`` one value per worker, ``throughput``
    minibatches per unit time, and ``speedup`` that throughput over
    backprop's for the same costs.
    """

    mode: str
    costs: Costs
    minibatches: int
    intervals: list[Interval]
    makespan: float
    busy: list[float] = field(default_factory=list)
    idle_fraction: list[float] = field(default_factory=list)
    throughput: float = 0.0
    speedup: float = 1.0
    micro_batches: int = 1

    def worker_intervals(self, worker: int) -> list[Interval]:
        """The tasks of one worker, in time order."""
        check_int("worker", worker, 0, self.costs.modules - 1)
        return sorted((iv for iv in self.intervals if iv.worker == worker),
                      key=lambda iv: iv.start)

    def idle_intervals(self, worker: int) -> list[tuple[float, float]]:
        """The gaps in one worker's schedule between time 0 and the makespan."""
        gaps, t = [], 0.0
        for iv in self.worker_intervals(worker):
            if iv.start > t + 1e-12:
                gaps.append((t, iv.start))
            t = max(t, iv.end)
        if self.makespan > t + 1e-12:
            gaps.append((t, self.makespan))
        return gaps


def simulate(costs: Costs, mode: str = "backprop", minibatches: int = 16,
             micro_batches: int = 4) -> Timeline:
    """Schedule ``minibatches`` minibatches under ``mode`` and measure the result.

    ``micro_batches`` (M) matters only to the pipeline-parallel schemes.
    """
    if not isinstance(costs, Costs):
        raise ValueError(f"costs must be a Costs, got {type(costs).__name__}")
    check_choice("mode", mode, MODES)
    check_int("minibatches", minibatches, 1, 10_000)
    check_int("micro_batches", micro_batches, 1, 256)
    if mode in PIPELINES:
        timeline = _schedule_pipeline(costs, mode, minibatches, micro_batches)
    else:
        timeline = _schedule(costs, mode, minibatches)
    if mode == "backprop":
        reference = timeline.throughput
    else:
        reference = _schedule(costs, "backprop", minibatches).throughput
    timeline.speedup = timeline.throughput / reference
    return timeline


def compare(costs: Costs, minibatches: int = 16, micro_batches: int = 4) -> dict[str, Timeline]:
    """All five schemes for the same costs, keyed by mode."""
    return {mode: simulate(costs, mode, minibatches, micro_batches) for mode in MODES}


def speedup_curve(modules: Sequence[int], forward: float = 1.0, backward: float = 2.0,
                  synth: float = 0.0, delay: float = 0.0, minibatches: int = 16,
                  micro_batches: int = 4) -> dict[str, list[float]]:
    """Speed-up over backprop of each mode as the number of identical modules K grows."""
    ks = [check_int("modules", k, 1, 64) for k in modules]
    if not ks:
        raise ValueError("modules must list at least one K")
    curve: dict[str, list[float]] = {mode: [] for mode in MODES}
    for k in ks:
        for mode, timeline in compare(Costs.uniform(k, forward, backward, synth, delay),
                                      minibatches, micro_batches).items():
            curve[mode].append(timeline.speedup)
    return curve


def pipeline_bubble(modules: int, micro_batches: int) -> float:
    """Closed form: with K equal modules, M micro-batches and no delay, GPipe and 1F1B
    idle every worker (K-1)/(M+K-1) of the time, and their speed-up over backprop is
    K M / (M+K-1)."""
    k = check_int("modules", modules, 1, 64)
    m = check_int("micro_batches", micro_batches, 1, 256)
    return (k - 1) / (m + k - 1)


def backprop_idle_fraction(costs: Costs, worker: int) -> float:
    """Closed form: under backprop each step takes sum(f) + sum(b) + 2 (K-1) delay,
    of which worker i is busy f_i + b_i. With K equal modules and no delay: (K-1)/K."""
    check_int("worker", worker, 0, costs.modules - 1)
    step = sum(costs.forward) + sum(costs.backward) + 2 * (costs.modules - 1) * costs.delay
    return 1.0 - (costs.forward[worker] + costs.backward[worker]) / step


# -- the scheduler ------------------------------------------------------------------

def _schedule(costs: Costs, mode: str, minibatches: int) -> Timeline:
    """Backprop, update-decoupled and complete unlocking (arguments checked by ``simulate``)."""
    k, c = costs.modules, costs.delay
    free = [0.0] * k                 # when each worker is next free
    intervals: list[Interval] = []

    def run(worker: int, kind: str, n: int, duration: float, ready: float = 0.0) -> float:
        start = max(free[worker], ready)
        end = start + duration
        if duration > 0:
            intervals.append(Interval(worker, kind, n, start, end))
        free[worker] = end
        return end

    for n in range(minibatches):
        if mode == "backprop":
            arrived = 0.0
            for i in range(k):       # forward: each module waits for the one below
                arrived = run(i, "forward", n, costs.forward[i], arrived) + c
            arrived -= c             # the top module computes the loss itself
            for i in reversed(range(k)):   # backward: each waits for the one above
                arrived = run(i, "backward", n, costs.backward[i], arrived) + c
        elif mode == "decoupled":
            arrived = 0.0
            for i in range(k):
                arrived = run(i, "forward", n, costs.forward[i], arrived) + c
                if i < k - 1:        # synthetic gradient at this module's output
                    run(i, "synthesizer", n, costs.synth[i])
                run(i, "backward", n, costs.backward[i])
        else:
            for i in range(k):
                synths = (i > 0) + (i < k - 1)   # synthetic input and/or synthetic gradient
                run(i, "synthesizer", n, synths * costs.synth[i])
                run(i, "forward", n, costs.forward[i])
                run(i, "backward", n, costs.backward[i])

    return _measure(mode, costs, minibatches, intervals, free)


def pipeline_order(mode: str, worker: int, modules: int, micro_batches: int
                   ) -> list[tuple[str, int]]:
    """The order in which one worker runs its micro-batches' tasks in one minibatch.

    GPipe: all M forwards, then all M backwards. 1F1B: K-1-i forwards to
    fill the pipeline (worker i, 0-based), then one forward and one backward
    in turn, then the remaining backwards.
    """
    check_choice("mode", mode, PIPELINES)
    m = micro_batches
    if mode == "gpipe":
        return [("forward", j) for j in range(m)] + [("backward", j) for j in range(m)]
    warmup = min(modules - 1 - worker, m)
    order = [("forward", j) for j in range(warmup)]
    for j in range(m - warmup):
        order += [("forward", warmup + j), ("backward", j)]
    return order + [("backward", j) for j in range(m - warmup, m)]


def _schedule_pipeline(costs: Costs, mode: str, minibatches: int, micro_batches: int) -> Timeline:
    """List scheduling: each worker runs its tasks in ``pipeline_order``, each task as soon
    as its worker is free and its message (a micro-batch's activation from below, or its
    gradient from above) has arrived."""
    k, m, c = costs.modules, micro_batches, costs.delay
    queues = [[(kind, n, j) for n in range(minibatches)
               for kind, j in pipeline_order(mode, i, k, m)] for i in range(k)]
    position, free = [0] * k, [0.0] * k
    done: dict[tuple[int, str, int, int], float] = {}
    intervals: list[Interval] = []
    remaining = sum(len(q) for q in queues)
    while remaining:
        progressed = False
        for i in range(k):
            while position[i] < len(queues[i]):
                kind, n, j = queues[i][position[i]]
                source = i - 1 if kind == "forward" else i + 1
                ready = 0.0
                if 0 <= source < k:
                    if (source, kind, n, j) not in done:
                        break
                    ready = done[(source, kind, n, j)] + c
                cost = (costs.forward[i] if kind == "forward" else costs.backward[i]) / m
                start = max(free[i], ready)
                free[i] = done[(i, kind, n, j)] = start + cost
                if cost > 0:
                    intervals.append(Interval(i, kind, n, start, start + cost, j))
                position[i] += 1
                remaining -= 1
                progressed = True
        if not progressed:      # cannot happen for the orders above
            raise RuntimeError(f"the {mode} schedule is stuck")
    return _measure(mode, costs, minibatches, intervals, free, micro_batches)


def _measure(mode: str, costs: Costs, minibatches: int, intervals: list[Interval],
             free: list[float], micro_batches: int = 1) -> Timeline:
    k = costs.modules
    makespan = max(free)
    if makespan <= 0:
        raise ValueError("costs must not all be zero: nothing takes any time")
    busy = [0.0] * k
    for iv in intervals:
        busy[iv.worker] += iv.duration
    return Timeline(mode=mode, costs=costs, minibatches=minibatches, intervals=intervals,
                    makespan=makespan, busy=busy,
                    idle_fraction=[1.0 - b / makespan for b in busy],
                    throughput=minibatches / makespan, micro_batches=micro_batches)


def _costs(name: str, values: Sequence[float]) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise ValueError(f"{name} must be a sequence of costs (one per module), got {values!r}")
    if not 1 <= len(values) <= 64:
        raise ValueError(f"{name} must list between 1 and 64 costs, got {len(values)}")
    return tuple(check_float(f"{name}[{i}]", v, 0.0) for i, v in enumerate(values))


@dataclass(frozen=True)
class LockingSettings(Settings):
    """Notebook 00's explorer: K identical modules, their costs, the message delay,
    minibatches, and the micro-batches of pipeline-parallel backprop."""

    modules: int = 4
    forward: float = 1.0
    backward: float = 2.0
    synth: float = 0.3
    delay: float = 0.0
    minibatches: int = 8
    micro_batches: int = 4

    def validate(self) -> None:
        check_int("modules", self.modules, 1, 64)
        check_float("forward", self.forward, 0.0, low_open=True)
        check_float("backward", self.backward, 0.0, low_open=True)
        check_float("synth", self.synth, 0.0)
        check_float("delay", self.delay, 0.0)
        check_int("minibatches", self.minibatches, 1)
        check_int("micro_batches", self.micro_batches, 1, 256)
