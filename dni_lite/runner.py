"""Side-by-side training: variants of one model, trained in lockstep, logged as windowed means.

Every experiment of the course compares *variants* (backprop, DNI, cDNI, an
ablation...) of one model. They start from one initialisation, see one stream
of batches, and are logged the same way. This module holds that loop once:

* ``Settings``: the base of each experiment's settings object. Its fields are
  the experiment's parameters (and a panel's controls); it is validated when
  it is made, so a bad value fails at once with a ``ValueError`` naming it.
* ``seeded(seed)``: weight initialisation from a fixed seed without touching
  the caller's global random state (data and batches use explicit generators).
* ``lockstep(...)``: step every variant on each batch in turn; every
  ``log_every`` steps yield one row of metrics.
* ``Progress``: what a long experiment yields between its metric rows, so
  that whoever drives it can show how far it is, and stop it, at once.
* ``run_to_end(experiment)``, ``rows(experiment)``: drive an experiment without a panel.

Metric keys follow one scheme: ``<metric>/<variant>`` or
``<metric>/<variant>/<layer>`` (for example ``acc/cdni``, ``cos/dni/L2``);
keys without a variant (``step``, ``epoch``) describe the whole row.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, TypeVar

import torch

Row = dict[str, float]
S = TypeVar("S", bound="Settings")


# -- settings -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """An experiment's settings: a frozen dataclass, validated when made.

    Subclasses declare fields with their defaults (the only place a default is
    written) and check them in ``validate``.
    """

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field out of its range."""

    def replace(self: S, **changes: Any) -> S:
        """A copy with some fields changed (validated; an unknown name fails with its name)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"{type(self).__name__} has no setting {unknown[0]!r}; "
                             f"its settings are {sorted(names)}")
        return dataclasses.replace(self, **changes)

    @classmethod
    def build(cls: type[S], settings: S | None = None, **overrides: Any) -> S:
        """``settings`` (or the defaults) with ``overrides`` applied: what experiments accept."""
        if settings is None:
            settings = cls()
        elif not isinstance(settings, cls):
            raise ValueError(f"settings must be a {cls.__name__}, got {type(settings).__name__}")
        return settings.replace(**overrides) if overrides else settings


# -- seeds --------------------------------------------------------------------------------
@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's global generator seeded, then restore the caller's state.

    PyTorch layers draw their initial weights from the global generator; this
    makes those draws depend on ``seed`` alone without reseeding the caller.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# -- the side-by-side loop ----------------------------------------------------------------
class Trainer(Protocol):
    """One variant: ``step(*batch)`` trains on a batch and returns its metrics for this step."""

    def step(self, *batch: Any) -> Mapping[str, float]: ...


def metric_key(key: str, variant: str) -> str:
    """``loss`` -> ``loss/<variant>``; ``cos/L2`` -> ``cos/<variant>/L2``."""
    head, _, tail = key.partition("/")
    return f"{head}/{variant}/{tail}" if tail else f"{head}/{variant}"


def windowed_means(variant: str, window: list[Mapping[str, float]]) -> Row:
    """Mean of every metric over the steps since the last row (over the steps that report it)."""
    row: Row = {}
    for key in sorted({k for r in window for k in r}):
        values = [r[key] for r in window if key in r]
        row[metric_key(key, variant)] = sum(values) / len(values)
    return row


@dataclass
class Result:
    """What a side-by-side run returns.

    ``last``: the last logged row; ``trainers``: the trained variants by name;
    ``seconds``: each variant's training time (its ``step`` calls only);
    ``data``: the data set or task the run used; ``settings``: the settings it ran with.
    """

    last: Row
    trainers: dict[str, Any] = field(repr=False)
    seconds: dict[str, float] = field(default_factory=dict)
    data: Any = field(default=None, repr=False)
    settings: Any = None

    def final(self, metric: str) -> dict[str, float]:
        """``{variant: value}`` of one metric in the last row (``final("acc")``)."""
        return {v: self.last[metric_key(metric, v)] for v in self.trainers
                if metric_key(metric, v) in self.last}


HEARTBEAT_S = 0.2   # a long-running loop yields a Progress at least this often


def lockstep(trainers: Mapping[str, Trainer], batches: Iterable[tuple], steps: int,
             log_every: int, evaluate: Callable[[str, Any], Mapping[str, float]],
             header: Callable[[int], Row] | None = None, timed: bool = False,
             data: Any = None, settings: Any = None) -> Iterator[Row | Progress]:
    """Train every variant on each batch in turn; every ``log_every`` steps yield a row.

    A row holds ``step``, the ``header(step)`` fields, each variant's windowed
    means of its step metrics, and ``evaluate(name, trainer)`` (for example the
    test accuracy). With ``timed`` each row also has ``seconds/<variant>``:
    cumulative training time. A variant whose values stop being finite is
    dropped after that row is yielded (its diverged values are in the row, so
    whoever draws it can say where); the others go on. The run ends when no
    variant is left or a header value is not finite. The generator returns a
    ``Result``.

    Between rows it yields a ``Progress`` heartbeat whenever ``HEARTBEAT_S``
    has passed since its last yield, so a panel can stop it at once however
    long a row takes. Use ``run_to_end`` (or skip ``Progress``) to get the rows.
    """
    names = list(trainers)
    batches = iter(batches)
    window: dict[str, list[Mapping[str, float]]] = {name: [] for name in names}
    seconds = {name: 0.0 for name in names}
    row: Row = {}
    last_yield = time.perf_counter()

    def heartbeat_due() -> bool:
        return time.perf_counter() - last_yield >= HEARTBEAT_S

    for step in range(1, steps + 1):
        batch = next(batches)
        for name in names:
            start = time.perf_counter()
            window[name].append(trainers[name].step(*batch))
            seconds[name] += time.perf_counter() - start
            if heartbeat_due():
                yield Progress(step, steps, f"step {step} of {steps}")
                last_yield = time.perf_counter()
        if step % log_every and step != steps:
            continue
        row = {"step": step, **(header(step) if header else {})}
        header_ok = _all_finite(row)
        diverged = []
        for name in names:
            part = {metric_key(k, name): v for k, v in evaluate(name, trainers[name]).items()}
            part.update(windowed_means(name, window[name]))
            window[name].clear()
            if timed:
                part[f"seconds/{name}"] = seconds[name]
            if not _all_finite(part):
                diverged.append(name)
            row.update(part)
            if heartbeat_due():
                yield Progress(step, steps, f"evaluating at step {step}")
                last_yield = time.perf_counter()
        yield row
        last_yield = time.perf_counter()
        names = [name for name in names if name not in diverged]
        if not names or not header_ok:
            break
    return Result(row, dict(trainers), seconds, data, settings)


def _all_finite(row: Mapping[str, Any]) -> bool:
    return all(math.isfinite(v) for v in row.values() if isinstance(v, (int, float)))


class Stopped(Exception):
    """Raised inside a long call (a benchmark run) when its caller asked it to stop."""


def check_stop(stop: Any) -> None:
    """Raise ``Stopped`` if ``stop`` (a ``threading.Event`` or None) is set."""
    if stop is not None and stop.is_set():
        raise Stopped("stopped on request")


@dataclass(frozen=True)
class Progress:
    """A heartbeat, not a metric row: ``done`` of ``total`` units of work, and what is running.

    Sweeps and benchmarks yield one often (several times a second) between
    their metric rows, so a panel can show progress and stop them at once.
    """

    done: float
    total: float
    what: str = ""


def rows(experiment: Iterator[Row | Progress]) -> Iterator[Row]:
    """An experiment's metric rows as they come, its ``Progress`` heartbeats skipped."""
    return (item for item in experiment if not isinstance(item, Progress))


def run_to_end(experiment: Iterator[Row | Progress]) -> tuple[list[Row], Any]:
    """Drive an experiment generator to its end; return its metric rows (``Progress``
    heartbeats skipped) and its return value."""
    rows = []
    while True:
        try:
            row = next(experiment)
        except StopIteration as done:
            return rows, done.value
        if not isinstance(row, Progress):
            rows.append(row)
