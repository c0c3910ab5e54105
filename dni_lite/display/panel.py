"""The experiment panel every notebook uses: settings, Run/Stop, status, live plot.

An *experiment* is a function that takes a settings object (a
``runner.Settings``) and returns an iterator of metric dicts (one per logged
step), with ``runner.Progress`` heartbeats between them if it is slow. The
panel owns the display; the experiment owns the training.

How a widget's value reaches a training loop, all in this file: each control
is named after a field of the settings object and shows that field's default
(``controls.bind``, when the panel is built); at Run, ``settings()`` copies the
settings object with every control's value (validated), and ``_drive`` calls
``experiment(settings)`` and drives the iterator.

The loop that drives the iterator is the only code that touches model or
plot state:

* running the notebook cell calls ``panel.run()``, which shows the panel,
  drives the loop on the calling thread with the widgets' current (default)
  values, so the first run is live during Run All, and returns what
  ``runner.run_to_end`` returns: the rows and the experiment's result. The
  cell's output then also holds a picture of the final figure, so a reader
  of the saved notebook (GitHub, nbviewer, an HTML export) sees it;
* the Run button only sets an event; a worker thread waiting on it drives
  the loop;
* the Stop button only sets an event; the loop checks it between rows and
  heartbeats, so a stopped model is never half-updated and a new Run starts
  cleanly. A kernel interrupt during ``run()`` is handled like Stop.

A method whose metrics turn NaN or infinite is marked where it diverged (its
line ends, the legend says where) and the others go on; the status line
names the likely cause. Re-running the cell that made a panel stops that
panel's run first, so no invisible run is left training.
"""
from __future__ import annotations

import dataclasses
import html
import math
import re
import threading
import time
import weakref
from typing import Any, Callable, Iterable, Mapping, Sequence

import ipywidgets as widgets
import torch

from ..runner import Progress, Settings
from .controls import bind
from .live_plot import LivePlot, Plot, finite, png_base64
from .style import is_reference, layer_of, variant_of

Experiment = Callable[[Settings], Iterable[Mapping[str, float]]]

_COLOURS = {"idle": "#555", "waiting": "#8a6d00", "running": "#1f5fa8", "done": "#1d7a34",
            "stopped": "#8a6d00", "diverged": "#b00020", "error": "#b00020", "closed": "#555"}
EXACT_METHODS = ("backprop", "bptt", "bptt_long", "no_backprop")
MEASURED_X = ("depth", "width", "depths", "widths")


class ExperimentPanel:
    """Widgets + Run/Stop + status line + live plotly figure around one experiment.

    Args:
        experiment: ``experiment(settings)`` returns an iterator of metric dicts.
        settings: the settings object whose values the controls start from
            (the experiment's defaults, or the notebook's choice).
        controls: setting name -> widget (from ``controls``); a name that is
            not a field of ``settings`` fails here, not at Run.
        plots: the subplots of the live figure.
        title: shown above the controls, and in the status line.
        x_key: the metric used as the x axis; ``x_title`` its axis title.
        max_fps: at most this many redraws per second. Each redraw sends every
            line's points to the browser; many per second can keep the browser and
            server so busy that a Stop click waits behind the updates.
        plot_mode: ``"widget"`` or ``"static"`` (default: ``live_plot.plot_mode()``).
    """

    _by_cell: dict[str, "ExperimentPanel"] = {}
    _all: "weakref.WeakSet[ExperimentPanel]" = weakref.WeakSet()

    def __init__(self, experiment: Experiment, settings: Settings,
                 controls: Mapping[str, widgets.ValueWidget], plots: Sequence[Plot],
                 title: str = "", x_key: str = "step", x_title: str | None = None,
                 max_fps: float = 2.0, plot_mode: str | None = None) -> None:
        if not callable(experiment):
            raise ValueError("experiment must be callable, returning an iterator of metric dicts")
        if not isinstance(settings, Settings):
            raise ValueError(f"settings must be a Settings object, got {type(settings).__name__}")
        self.experiment = experiment
        self.defaults = settings
        self.controls = dict(controls)
        bind(self.controls, settings)
        self.title = title
        self.plot = LivePlot(plots, x_key=x_key, x_title=x_title or _X_TITLES.get(x_key, x_key),
                             x_measured=x_key in MEASURED_X, max_fps=max_fps, mode=plot_mode)
        self.history: list[dict[str, float]] = []
        self.result: Any = None
        self.state = "idle"
        self.settings_used: Settings | None = None
        self._cell_run: tuple[str, Settings | None] = ("idle", None)
        self.stop_latency_s: float | None = None   # last Stop: seconds until the panel said Stopped
        self._stop_pressed_at: float | None = None

        self._stop = threading.Event()
        self._run_requested = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._handle: Any = None
        self._snapshot: bytes | None = None
        self.run_button = widgets.Button(description="Run", button_style="success", icon="play")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop",
                                          disabled=True)
        self.run_button.on_click(lambda _: self._run_requested.set())
        self.stop_button.on_click(lambda _: self.stop())
        self.status = widgets.HTML()
        self.details = widgets.HTML()
        self._set_status("idle", "Ready: set the controls and press Run.")
        box = widgets.Box(list(self.controls.values()),
                          layout=widgets.Layout(display="flex", flex_flow="row wrap"))
        header = [widgets.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        self.widget = widgets.VBox(header + [box, widgets.HBox([self.run_button, self.stop_button]),
                                             self.status, self.plot.widget, self.details],
                                   layout=widgets.Layout(width="100%"))
        self.status.add_class("dni-lite-status")
        self.widget.add_class("dni-lite-panel")
        self._all.add(self)
        self._worker = threading.Thread(target=self._serve, daemon=True, name="dni-lite-panel")
        self._worker.start()
        self._replace_earlier_panel_of_this_cell()

    # -- public API -----------------------------------------------------------------
    def settings(self, **overrides: Any) -> Settings:
        """The settings a Run would use now: the defaults with every control's value."""
        values = {name: w.value for name, w in self.controls.items()}
        return self.defaults.replace(**{**values, **overrides})

    def run(self, **overrides: Any) -> tuple[list[dict[str, float]], Any]:
        """Show the panel and run the experiment now, on this thread; return ``(rows, result)``.

        ``overrides`` replace control values for this run only. Errors raised by
        the experiment (for example a ``ValueError`` for a bad setting) are
        shown in the status line and raised again; a run that stopped or
        diverged returns the rows it logged and ``None``.
        """
        self.show()
        self._cell_run = ("error", None)
        try:
            self._drive(lambda: self.settings(**overrides), raise_errors=True)
        finally:
            self._cell_run = (self.state, self.settings_used)
            self._show_snapshot()
        return list(self.history), self.result

    def require_defaults(self) -> None:
        """Raise, in words, unless ``run()`` finished with the settings the checks are calibrated for.

        Check cells call this first: their thresholds hold for the panel's
        default settings, so a changed setting says so instead of failing a
        bare assertion. (Runs started with the Run button do not count: the
        checks read the rows ``run()`` returned.)
        """
        state, used = self._cell_run
        if state != "done" or used is None:
            raise RuntimeError(f"The checks below need this panel's run to finish, and it has not "
                               f"({self.status_text}). Run the panel's cell again, then these checks.")
        changed = [f"{self.controls[n].description if n in self.controls else n} = "
                   f"{_number(getattr(used, n))} (the default is {_number(getattr(self.defaults, n))})"
                   for n in (f.name for f in dataclasses.fields(used)) if getattr(used, n) != getattr(self.defaults, n)]
        if changed:
            raise RuntimeError("The checks below are calibrated for the default settings, and this "
                               f"run changed {'; '.join(changed)}. Put the default back in the "
                               "panel's cell (or restart and run all) to check the claims.")

    def show(self) -> None:
        """Display the panel in the running cell's output (once)."""
        if self._handle is None and _in_kernel():
            from IPython.display import display
            self._handle = display(self, display_id=True)

    def start(self) -> None:
        """Run in the background, as the Run button does."""
        self._run_requested.set()

    def stop(self) -> None:
        """Ask the running experiment to stop after its current step.

        Safe from any thread (the Stop button's callback runs on the kernel's
        message thread): it notes the time, for ``stop_latency_s``, and sets an event.
        """
        self._stop_pressed_at = time.monotonic()
        self._stop.set()

    def close(self, reason: str = "This panel was closed.") -> None:
        """Stop any run, wait for it to end, and retire the panel (its worker thread ends)."""
        self._closed.set()
        self._run_requested.clear()
        self._stop.set()
        with self._lock:             # waits for a run in progress to finish stopping
            self._set_buttons(running=False)
            self.run_button.disabled = True
            self._set_status("closed", reason)

    def wait(self, timeout: float = 60.0) -> str:
        """Block until a background run has finished; return the final state."""
        deadline = time.monotonic() + timeout
        while self._run_requested.is_set() or self.state in ("running", "waiting"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the experiment is still running after {timeout} s")
            time.sleep(0.01)
        return self.state

    @property
    def status_text(self) -> str:
        """The status line as plain text."""
        return html.unescape(self.status.value.split(">", 1)[1].rsplit("<", 1)[0])

    @property
    def diverged(self) -> dict[str, Any]:
        """Method -> the x value where it diverged, in the run shown (the plot keeps it)."""
        return self.plot.diverged

    @classmethod
    def running(cls) -> list["ExperimentPanel"]:
        """The panels of this kernel whose run is in progress (re-run cells leave none behind)."""
        return [p for p in list(cls._all) if p.state in ("running", "waiting")]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = (f"{self.title or 'Experiment panel'}: {self.status_text} "
                                "(run the notebook for the live panel)")
        if self._snapshot is not None:
            bundle["image/png"] = png_base64(self._snapshot)
        return bundle

    # -- the loop -------------------------------------------------------------------
    def _serve(self) -> None:
        # A new thread does not inherit the intra-op thread setting the notebook
        # made (torch.set_num_threads); without this, the OpenMP pools of two
        # threads fight over the cores and a run can be 100x slower.
        while not self._closed.is_set():
            if not self._run_requested.wait(0.2) or self._closed.is_set():
                continue
            torch.set_num_threads(torch.get_num_threads())
            try:
                if self._wait_for_busy_cell():
                    self._drive(self.settings, raise_errors=False)
            finally:
                self._run_requested.clear()

    def _wait_for_busy_cell(self) -> bool:
        """A Run pressed while another cell runs waits for it (and says so); False if stopped."""
        if not _CELL_BUSY.is_set():
            return True
        self._stop.clear()
        self.stop_button.disabled = False
        self._set_status("waiting", "Waiting: another cell is running. This run starts when it "
                                    "finishes (press Stop to cancel).")
        while _CELL_BUSY.is_set():
            if self._stop.wait(0.1) or self._closed.is_set():
                self.stop_button.disabled = True
                self._set_status("stopped", "Cancelled before it started. Press Run to start again.")
                return False
        return True

    def _drive(self, make_settings: Callable[[], Settings], raise_errors: bool) -> str:
        with self._lock:
            if self._closed.is_set():
                return self.state
            self._stop.clear()
            self._stop_pressed_at = None
            self._set_buttons(running=True)
            self._set_status("running", f"Starting {self._what()}…")
            self.history, self.result, self.settings_used = [], None, None
            self.plot.reset()
            self.details.value = ""
            self._start = time.monotonic()
            iterator = None
            state, message = "error", "Error: the run ended unexpectedly."
            try:
                self.settings_used = make_settings()
                iterator = iter(self.experiment(self.settings_used))
                state, message = self._consume(iterator)
            except KeyboardInterrupt:   # a kernel interrupt: leave the panel usable, then re-raise
                state, message = "stopped", (f"Interrupted {self._where()}. "
                                             "Press Run to start again.")
                raise
            except Exception as exc:    # shown to the student, then raised in a cell
                state, message = "error", f"Error: {exc}"
                if raise_errors:
                    raise
            finally:
                self._finish(state, message, iterator)
            return state

    def _consume(self, iterator: Any) -> tuple[str, str]:
        while True:
            if self._stop.is_set():
                return "stopped", f"Stopped {self._where()}. Press Run to start again."
            try:
                item = next(iterator)
            except StopIteration as done:
                state, message = self._outcome()
                self.result = done.value if state == "done" else None
                return state, message
            if isinstance(item, Progress):
                self._show_progress(item.done, item.total, item.what)
                continue
            row = dict(item)
            bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
            where = row.get(self.plot.x_key, len(self.history) + 1)
            for key in bad:
                if "/" in key:
                    self.plot.mark_diverged(variant_of(key), where)
            row = {k: v for k, v in row.items() if k not in bad}   # a NaN is never kept or drawn
            self.history.append(row)
            if any("/" not in k for k in bad):
                self.plot.redraw()
                return "diverged", (f"Diverged at {self.plot.x_title} {where}: the run cannot go "
                                    f"on. {self._advice(self.diverged)}")
            if self.plot.append(row) or bad:
                self._show_progress(*self._position(row))

    def _outcome(self) -> tuple[str, str]:
        took = f"in {_duration(time.monotonic() - self._start)}"
        if not self.history:
            return "done", f"Done {took}; the experiment logged nothing."
        alive = {line.style.group for line in self.plot.lines
                 if line.style.group not in self.diverged
                 and any(finite(r.get(line.key)) for r in self.history)}
        if self.diverged and not alive:
            by = max(self.diverged.values(), key=lambda w: (isinstance(w, (int, float)), w))
            return "diverged", (f"Every method diverged, by {self.plot.x_title} {_number(by)}. "
                                f"{self._advice(self.diverged)}")
        message = f"Done {took}. {self._headline()}"
        if self.diverged:
            message += f" {self._diverged_words()}; {self._advice(self.diverged)}"
        return "done", message

    def _finish(self, state: str, message: str, iterator: Any) -> None:
        if iterator is not None and hasattr(iterator, "close"):
            try:
                iterator.close()
            except Exception:   # a generator that fails while closing must not freeze the panel
                pass
        self.plot.redraw()
        self._set_buttons(running=False)
        self._set_status(state, message)
        if state == "stopped" and self._stop_pressed_at is not None:
            self.stop_latency_s = time.monotonic() - self._stop_pressed_at
        self.details.value = _details(self.history[-1] if self.history else {})

    # -- words ---------------------------------------------------------------------
    def _what(self) -> str:
        return f"“{self.title}”" if self.title else "the experiment"

    def _position(self, row: Mapping[str, Any]) -> tuple[float, float, str]:
        """(done, total, words) for the status line, from the row's x value and the settings."""
        x = row.get(self.plot.x_key)
        total = _total(self.settings_used, self.plot.x_key)
        if isinstance(total, tuple):
            done = total.index(x) + 1 if x in total else len(self.history)
            return done, len(total), f"{self.plot.x_title} {_number(x)} ({done} of {len(total)})"
        if total and x is not None:
            return float(x), float(total), f"{self.plot.x_title} {_number(x)} of {_number(total)}"
        return 0, 0, f"{len(self.history)} rows logged"

    def _show_progress(self, done: float, total: float, words: str) -> None:
        elapsed = time.monotonic() - self._start
        text = f"Running {self._what()}: {words}"
        if total and 0 < done <= total:
            text += f" ({100 * done / total:.0f}%)"
            if done < total and elapsed > 0.5:
                text += f", about {_duration(elapsed * (total - done) / done)} left"
        self._set_status("running", text + ".")

    def _where(self) -> str:
        took = _duration(time.monotonic() - self._start)
        if self.history and self.plot.x_key in self.history[-1]:
            return f"at {self.plot.x_title} {_number(self.history[-1][self.plot.x_key])} after {took}"
        return f"after {took}"

    def _headline(self) -> str:
        """The first plot's final values in words, with the legend's names."""
        plot = self.plot.plots[0]
        last = self.history[-1]
        parts, refs = [], []
        for key in plot.keys:
            if layer_of(key) or not finite(last.get(key)):
                continue
            words = f"{self.plot.names[variant_of(key)]} {_value(last[key], plot)}"
            (refs if is_reference(key) else parts).append(words)
        if not parts:
            return ""
        at = last.get(self.plot.x_key)
        where = f" at {self.plot.x_title} {_number(at)}" if at is not None else ""
        title = re.sub(r"\s*\(.*?\)", "", plot.title)
        return f"{title[:1].upper()}{title[1:]}{where}: {', '.join(parts + refs)}."

    def _diverged_words(self) -> str:
        return "; ".join(f"{self.plot.names.get(g, g)} diverged at {self.plot.x_title} "
                         f"{_number(w)}" for g, w in self.diverged.items())

    def _advice(self, groups: Mapping[str, Any]) -> str:
        """The likely cause, in the controls' own words."""
        s = self.settings_used
        described = {**_SETTING_WORDS, **{n: w.description for n, w in self.controls.items()}}

        def setting(name: str) -> str:
            return f"the {described.get(name, name)} (now {getattr(s, name):g})"

        lr = next((n for n in ("lr", "model_lr") if hasattr(s, n)), None)
        causes = []
        if any(g not in EXACT_METHODS for g in groups):
            if getattr(s, "zero_init", True) is False:
                causes.append("synthesizers that are not zero-initialised (turn "
                              f"“{described.get('zero_init', 'zero_init')}” on)")
            if hasattr(s, "synth_lr"):
                causes.append(f"{setting('synth_lr')} is too high")
        if lr is not None:
            causes.append(f"{setting(lr)} is too high")
        if not causes:
            return "Lower the learning rate and press Run."
        return "Likely cause: " + ", or ".join(causes) + ". Change it and press Run."

    # -- widgets -------------------------------------------------------------------
    def _set_buttons(self, running: bool) -> None:
        self.run_button.disabled = running or self._closed.is_set()
        self.stop_button.disabled = not running
        for w in self.controls.values():
            w.disabled = running

    def _set_status(self, state: str, message: str) -> None:
        self.state = state
        self.status.value = (f"<span style='color:{_COLOURS[state]}'>"
                             f"{html.escape(message)}</span>")

    def _show_snapshot(self) -> None:
        if self._handle is None:
            return
        try:
            self._snapshot = self.plot.snapshot_png()
        except Exception:      # a picture for readers must never break the run
            self._snapshot = None
        self._handle.update(self)

    def _replace_earlier_panel_of_this_cell(self) -> None:
        cell = _cell_id()
        if cell is None:
            return
        earlier = self._by_cell.get(cell)
        if earlier is not None and earlier is not self:
            earlier.close("Replaced: this cell was run again, so this panel's run was stopped.")
        self._by_cell[cell] = self


# -- helpers ------------------------------------------------------------------------
_X_TITLES = {"step": "training step", "epoch": "epoch", "depth": "depth (hidden layers)",
             "width": "width (units per layer)"}

_SETTING_WORDS = {"lr": "learning rate", "model_lr": "model learning rate",
                  "synth_lr": "synthesizer learning rate", "zero_init": "zero-init synthesizer"}

_CELL_BUSY = threading.Event()


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _cell_id() -> str | None:
    """The id of the notebook cell being run (JupyterLab and Notebook 7 send it), else None."""
    if not _in_kernel():
        return None
    from IPython import get_ipython
    kernel = get_ipython().kernel
    try:
        parent = kernel.get_parent("shell")
    except TypeError:
        parent = kernel.get_parent()
    return (parent or {}).get("metadata", {}).get("cellId")


def _track_busy_cells() -> None:
    """Keep ``_CELL_BUSY`` set while a cell runs (IPython's pre/post_run_cell events)."""
    if not _in_kernel():
        return
    from IPython import get_ipython
    events = get_ipython().events
    if getattr(events, "_dni_lite_tracked", False):
        return
    events.register("pre_run_cell", lambda *_: _CELL_BUSY.set())
    events.register("post_run_cell", lambda *_: _CELL_BUSY.clear())
    events._dni_lite_tracked = True


_track_busy_cells()


def _total(settings: Any, x_key: str) -> Any:
    """How far the x axis goes: the setting named after it (``steps``, ``epochs``, ``depths``)."""
    for name in (f"{x_key}s", x_key):
        value = getattr(settings, name, None)
        if isinstance(value, (int, float, tuple)) and not isinstance(value, bool):
            return value
    return None


def _value(value: float, plot: Plot) -> str:
    if "%" in (plot.y_title or plot.title):
        return f"{value:.1f}%"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _number(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _details(row: Mapping[str, Any]) -> str:
    """Every metric of the last row, as a collapsed table."""
    if not row:
        return ""
    cells = "".join(f"<tr><td><code>{html.escape(str(k))}</code></td><td>{html.escape(_cell(v))}</td></tr>"
                    for k, v in row.items())
    return ("<details><summary>All metrics of the last logged row</summary>"
            f"<table>{cells}</table></details>")


def _cell(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
