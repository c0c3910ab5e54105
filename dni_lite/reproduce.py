"""Long reference runs for notebooks 05 and 06, written to JSON with their provenance.

    python -m dni_lite.reproduce planted    # the planted dependency, 10x the notebook's budget
    python -m dni_lite.reproduce copy       # copy and repeat copy, T = 2..5, a larger LSTM
    python -m dni_lite.reproduce text       # Shakespeare, one pass over the training text
    python -m dni_lite.reproduce first_steps  # every configuration's first 20 steps, step by step

A laptop cannot run the paper's budgets inside a notebook, and a student who
wants to see where the curves go should not have to wait. Each command runs a
longer configuration (minutes to tens of minutes on two cores) and writes
``data/reference_<name>.json`` (or ``--out FILE``): the provenance (command,
versions, commit, device, wall time) and, for every run, its settings, logged
rows and training seconds. The notebooks plot these beside their live runs.

A logged row comes after hundreds of steps, and by then the numbers depend on
the CPU: the same code gave copy T=2's first row 1.19, 1.13, 1.38 or 1.22
training bits under four of MKL's code paths (sums rounded in another order,
amplified by training). What agrees across CPUs is the start: over the first 20
steps those paths stay within 1e-4. So ``first_steps`` records every
configuration's first ``FIRST_STEPS`` steps, one row per step, in
``data/reference_first_steps.json``, and the tests re-run them on whatever CPU
they are on: a change to the code that alters what a reference would compute
shows there.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from .claims.nb06 import REACH
from .data.tasks import DATA_DIR
from .experiments.recurrent import CopySettings, RecurrentSettings, StreamSettings, copy_experiment, stream_experiment
from .provenance import provenance
from .runner import Row, rows, run_to_end
from .validate import check_int

SEEDS = (0, 1, 2)
COPY = dict(hidden_dim=128, steps=5000, log_every=250)
REFERENCES: dict[str, dict[str, RecurrentSettings]] = {
    "planted": {
        **{f"one boundary (k=3, T=2), seed {s}": StreamSettings(steps=3000, log_every=100, seed=s)
           for s in SEEDS},
        **{f"several boundaries (k=3, T=1), seed {s}": REACH.replace(steps=3000, log_every=100, seed=s)
           for s in SEEDS},
    },
    "copy": {
        **{f"copy, T={T}": CopySettings(T=T, methods=("bptt", "dni", "dni_noise"), **COPY)
           for T in (2, 3, 4, 5)},
        **{f"copy, T={T}, DNI + Aux": CopySettings(T=T, aux=True, methods=("dni",), **COPY)
           for T in (2, 3, 4, 5)},
        **{f"repeat copy, T={T}": CopySettings(task="repeat_copy", T=T, methods=("bptt", "dni"), **COPY)
           for T in (2, 3, 4, 5)},
    },
    "text": {
        "shakespeare, T=4": StreamSettings(task="shakespeare", T=4, long_T=16, hidden_dim=256, steps=1700,
                                           log_every=50),
    },
}
TOLERANCE = 1e-3   # relative, for re-run floats; see ``compare``
FIRST_STEPS = 20   # steps per configuration in the first-steps file
FIRST_STEPS_NAME = "first_steps"


def names() -> list[str]:
    """The names with a results file: each reference, then ``"first_steps"`` (all of their first steps)."""
    return [*sorted(REFERENCES), FIRST_STEPS_NAME]


def reference_path(name: str) -> Path:
    """The committed results file of ``name`` (``data/reference_<name>.json``), one of ``names()``."""
    _check_name(name, names())
    return DATA_DIR / f"reference_{name}.json"


def settings_to_dict(settings: RecurrentSettings) -> dict[str, Any]:
    """The settings as JSON-ready fields, with the experiment they belong to."""
    return {"experiment": type(settings).__name__, **dataclasses.asdict(settings)}


def settings_from_dict(fields: dict[str, Any]) -> RecurrentSettings:
    """Settings back from ``settings_to_dict`` (validated; an unknown field is refused)."""
    fields = dict(fields)
    kinds = {"StreamSettings": StreamSettings, "CopySettings": CopySettings}
    kind = fields.pop("experiment", None)
    if kind not in kinds:
        raise ValueError(f"settings must name an experiment in {sorted(kinds)}, got {kind!r}")
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    try:
        return kinds[kind](**fields)
    except TypeError as exc:
        raise ValueError(f"settings of a {kind} are not valid: {exc}") from None


def experiment_of(settings: RecurrentSettings) -> Callable[..., Any]:
    """The experiment generator these settings are for."""
    return stream_experiment if isinstance(settings, StreamSettings) else copy_experiment


def run_rows(settings: RecurrentSettings, n_rows: int | None = None) -> tuple[list[Row], dict[str, float]]:
    """Run one reference configuration on one thread; the first ``n_rows`` rows (all if None)
    and each variant's training seconds (``{}`` when stopped early)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)      # one thread: the same arithmetic on every run on one CPU
    try:
        experiment = experiment_of(settings)(settings)
        if n_rows is None:
            logged, result = run_to_end(experiment)
            return logged, dict(result.seconds)
        logged: list[Row] = []
        for row in rows(experiment):
            logged.append(row)
            if len(logged) >= n_rows:
                break
        experiment.close()
        return logged, {}
    finally:
        torch.set_num_threads(threads)


def first_steps(settings: RecurrentSettings, n_steps: int | None = None) -> list[Row]:
    """The first ``n_steps`` (default ``FIRST_STEPS``) of a configuration, one row per step
    (``log_every=1``: training does not depend on when rows are logged), timings left out."""
    n_steps = FIRST_STEPS if n_steps is None else n_steps
    check_int("n_steps", n_steps, 1, settings.steps)
    logged, _ = run_rows(dataclasses.replace(settings, log_every=1), n_rows=n_steps)
    return [{k: v for k, v in row.items() if not k.startswith("seconds/")} for row in logged]


def first_steps_label(name: str, label: str) -> str:
    """How the first-steps file labels the run ``label`` of reference ``name``."""
    return f"{name}: {label}"


def run_first_steps(out: str | os.PathLike | None = None, argv: Sequence[str] | None = None,
                    log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Record the first ``FIRST_STEPS`` steps of every configuration of every reference in ``out``."""
    start = time.perf_counter()
    runs = []
    for name in sorted(REFERENCES):
        for label, settings in REFERENCES[name].items():
            runs.append({"label": first_steps_label(name, label), "settings": settings_to_dict(settings),
                         "rows": first_steps(settings)})
        log(f"{name}: {len(REFERENCES[name])} configurations")
    return _results(FIRST_STEPS_NAME, runs, start, out, argv)


def run(name: str, out: str | os.PathLike | None = None, argv: Sequence[str] | None = None,
        log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run every configuration of reference ``name`` and write the results file to ``out``."""
    _check_name(name, sorted(REFERENCES))
    start = time.perf_counter()
    runs = []
    for label, settings in REFERENCES[name].items():
        t = time.perf_counter()
        logged, seconds = run_rows(settings)
        runs.append({"label": label, "settings": settings_to_dict(settings), "rows": logged,
                     "seconds": seconds, "wall_s": round(time.perf_counter() - t, 1)})
        log(f"{label}: {runs[-1]['wall_s']:.0f} s; last row {_short(logged[-1])}")
    return _results(name, runs, start, out, argv)


def _results(name: str, runs: list[dict[str, Any]], start: float, out: str | os.PathLike | None,
             argv: Sequence[str] | None) -> dict[str, Any]:
    """The results file's content (runs and provenance), written to ``out`` unless it is None."""
    command = " ".join(["python -m dni_lite.reproduce", *(argv if argv is not None else [name])])
    result = {"reference": name, "provenance": {**provenance(command), "threads": 1,
                                                "wall_s": round(time.perf_counter() - start, 1)},
              "runs": runs}
    if out is not None:
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return result


def load(source: str | os.PathLike) -> dict[str, Any]:
    """A results file (a reference name or a path); a file that is not a complete one is refused."""
    named = str(source) in names()
    path = reference_path(str(source)) if named else Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `python -m dni_lite.reproduce "
                                f"{source if named else 'NAME --out ' + str(path)}`")
    try:
        result = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a reference results file (not JSON: {exc})") from None
    if not isinstance(result, dict) or not all(k in result for k in ("reference", "provenance", "runs")) \
            or not result["runs"] or not all(isinstance(r, dict) and {"label", "settings", "rows"} <= set(r)
                                             and r["rows"] for r in result["runs"]):
        raise ValueError(f"{path} is not a complete reference results file of python -m dni_lite.reproduce "
                         "(it needs reference, provenance and runs with label, settings and rows)")
    for r in result["runs"]:
        settings_from_dict(r["settings"])      # refuse settings the code would not accept
    return result


def describe(result: dict[str, Any]) -> str:
    """One line saying how a results file was made."""
    p = result["provenance"]
    minutes, seconds = divmod(int(p["wall_s"]), 60)
    return (f"`{p['command']}` at commit {(p['commit'] or 'unknown')[:7]}, dni_lite {p['dni_lite']}, "
            f"torch {p['torch']}, {p['device']}, {p.get('threads', '?')} thread, {minutes} min {seconds} s, "
            f"{p['date'][:10]}")


def final(run: dict[str, Any], metric: str) -> dict[str, float]:
    """``{variant: value}`` of one metric in a reference run's last row."""
    prefix = metric + "/"
    return {k[len(prefix):]: v for k, v in run["rows"][-1].items() if k.startswith(prefix)}


def find(result: dict[str, Any], label: str) -> dict[str, Any]:
    """The run called ``label`` in a results file."""
    for r in result["runs"]:
        if r["label"] == label:
            return r
    raise ValueError(f"label must be one of {[r['label'] for r in result['runs']]}, got {label!r}")


def compare(saved: Sequence[Row], fresh: Sequence[Row], tolerance: float = TOLERANCE) -> list[str]:
    """Differences between saved rows and re-run rows, ignoring timings (``seconds/...``).

    Integers (steps, copy lengths solved) must be equal; floats equal within a
    relative ``tolerance``: the torch version is pinned and runs use one
    thread, but another CPU may use other vector instructions, which change
    the rounding of sums in the last bits. Over a reference's first steps that
    stays below 1e-4; training amplifies it later (see the module's docstring).
    """
    problems = []
    for i, (a, b) in enumerate(zip(saved, fresh)):
        for key in sorted(set(a) | set(b)):
            if key.startswith("seconds/"):
                continue
            x, y = a.get(key), b.get(key)
            if x is None or y is None:
                problems.append(f"row {i}: {key} is {x} in the file and {y} now")
            elif isinstance(x, float) and math.isnan(x) and math.isnan(y):
                continue
            elif float(x).is_integer() and float(y).is_integer() and key.startswith(("step", "solved", "chars")):
                if x != y:
                    problems.append(f"row {i}: {key} is {x} in the file and {y} now")
            elif not math.isclose(x, y, rel_tol=tolerance, abs_tol=tolerance):
                problems.append(f"row {i}: {key} is {x:.6g} in the file and {y:.6g} now")
    if len(saved) != len(fresh):
        problems.append(f"{len(saved)} rows in the file, {len(fresh)} now")
    return problems


def _check_name(name: str, allowed: list[str]) -> None:
    if name not in allowed:
        raise ValueError(f"name must be one of {allowed}, got {name!r}")


def _short(row: Row) -> str:
    return ", ".join(f"{k} {v:.3g}" for k, v in row.items() if not k.startswith("seconds/"))


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m dni_lite.reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=names(),
                        help=f"which reference run ({FIRST_STEPS_NAME}: the first steps of all of them)")
    parser.add_argument("--out", help="results file (default: data/reference_<name>.json)")
    args = parser.parse_args(argv)
    out = args.out or reference_path(args.name)
    if args.name == FIRST_STEPS_NAME:
        run_first_steps(out, argv)
    else:
        run(args.name, out, argv)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
