"""The experiment panel every notebook uses: settings, Run/Stop, status, live plot.

An *experiment* is a function that takes a settings object (a
``runner.Settings``) and returns an iterator of metric dicts (one per logged
step). The panel owns the display; the experiment owns the training.

How a widget's value reaches a training loop, all in this file: each control
is named after a field of the settings object and shows that field's default
(``controls.bind``, when the panel is built); at Run, ``_settings`` copies the
settings object with every control's value (validated), and ``_drive`` calls
``experiment(settings)`` and drives the iterator.

The loop that drives the iterator is the only code that touches model or
plot state:

* running the notebook cell calls ``panel.run()``, which drives the loop on
  the calling thread with the widgets' current (default) values and returns
  what ``runner.run_to_end`` returns: the rows and the experiment's result;
* the Run button only sets an event; a worker thread waiting on it drives
  the loop;
* the Stop button only sets an event; the loop checks it between steps, so a
  stopped model is never half-updated and a new Run starts cleanly.

A metric that turns NaN or infinite stops the run with a status line that
says so; the non-finite point is never plotted.
"""
from __future__ import annotations

import html
import math
import threading
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

import ipywidgets as widgets
import torch

from ..runner import Settings
from .controls import bind
from .live_plot import LivePlot, Plot

Experiment = Callable[[Settings], Iterable[Mapping[str, float]]]

_COLOURS = {"idle": "#555", "running": "#1f5fa8", "done": "#1d7a34", "stopped": "#8a6d00",
            "diverged": "#b00020", "error": "#b00020"}


class ExperimentPanel:
    """Widgets + Run/Stop + status line + live plotly figure around one experiment.

    Args:
        experiment: ``experiment(settings)`` returns an iterator of metric dicts.
        settings: the settings object whose values the controls start from
            (the experiment's defaults, or the notebook's choice).
        controls: setting name -> widget (from ``controls``); a name that is
            not a field of ``settings`` fails here, not at Run.
        plots: the subplots of the live figure.
        title: shown above the controls.
        x_key: the metric used as the x axis.
        max_fps: at most this many redraws per second.
    """

    def __init__(self, experiment: Experiment, settings: Settings,
                 controls: Mapping[str, widgets.ValueWidget], plots: Sequence[Plot],
                 title: str = "", x_key: str = "step", x_title: str | None = None,
                 max_fps: float = 5.0) -> None:
        if not callable(experiment):
            raise ValueError("experiment must be callable, returning an iterator of metric dicts")
        if not isinstance(settings, Settings):
            raise ValueError(f"settings must be a Settings object, got {type(settings).__name__}")
        self.experiment = experiment
        self.defaults = settings
        self.controls = dict(controls)
        bind(self.controls, settings)
        self.plot = LivePlot(plots, x_key=x_key, x_title=x_title, max_fps=max_fps)
        self.history: list[dict[str, float]] = []
        self.result: Any = None
        self.state = "idle"
        self.settings_used: Settings | None = None

        self._stop = threading.Event()
        self._run_requested = threading.Event()
        self._lock = threading.Lock()
        self.run_button = widgets.Button(description="Run", button_style="success", icon="play")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop",
                                          disabled=True)
        self.run_button.on_click(lambda _: self._run_requested.set())
        self.stop_button.on_click(lambda _: self._stop.set())
        self.status = widgets.HTML()
        self._set_status("idle", "Ready: set the controls and press Run.")
        box = widgets.Box(list(self.controls.values()),
                          layout=widgets.Layout(display="flex", flex_flow="row wrap"))
        header = [widgets.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        self.widget = widgets.VBox(header + [box, widgets.HBox([self.run_button, self.stop_button]),
                                             self.status, self.plot.figure])
        self._worker = threading.Thread(target=self._serve, daemon=True)
        self._worker.start()

    # -- public API -----------------------------------------------------------------
    def settings(self, **overrides: Any) -> Settings:
        """The settings a Run would use now: the defaults with every control's value."""
        values = {name: w.value for name, w in self.controls.items()}
        return self.defaults.replace(**{**values, **overrides})

    def run(self, **overrides: Any) -> tuple[list[dict[str, float]], Any]:
        """Run the experiment now, on this thread; return ``(rows, result)`` as ``run_to_end`` does.

        ``overrides`` replace control values for this run only. Errors raised by
        the experiment (for example a ``ValueError`` for a bad setting) are
        shown in the status line and raised again; a run that stopped or
        diverged returns the rows it logged and ``None``.
        """
        self._drive(lambda: self.settings(**overrides), raise_errors=True)
        return list(self.history), self.result

    def start(self) -> None:
        """Run in the background, as the Run button does."""
        self._run_requested.set()

    def stop(self) -> None:
        """Ask the running experiment to stop after its current step."""
        self._stop.set()

    def wait(self, timeout: float = 60.0) -> str:
        """Block until a background run has finished; return the final state."""
        deadline = time.monotonic() + timeout
        while self._run_requested.is_set() or self.state == "running":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the experiment is still running after {timeout} s")
            time.sleep(0.01)
        return self.state

    @property
    def status_text(self) -> str:
        """The status line as plain text."""
        return html.unescape(self.status.value.split(">", 1)[1].rsplit("<", 1)[0])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # -- the loop -------------------------------------------------------------------
    def _serve(self) -> None:
        # A new thread does not inherit the intra-op thread setting the notebook
        # made (torch.set_num_threads); without this, the OpenMP pools of two
        # threads fight over the cores and a run can be 100x slower.
        while True:
            self._run_requested.wait()
            torch.set_num_threads(torch.get_num_threads())
            try:
                self._drive(self.settings, raise_errors=False)
            finally:
                self._run_requested.clear()

    def _drive(self, make_settings: Callable[[], Settings], raise_errors: bool) -> str:
        with self._lock:
            self._stop.clear()
            self.history, self.result, self.settings_used = [], None, None
            self.plot.reset()
            self._set_buttons(running=True)
            self._set_status("running", "Running…")
            start = time.monotonic()
            iterator = None
            try:
                self.settings_used = make_settings()
                iterator = iter(self.experiment(self.settings_used))
                state, message = self._consume(iterator, start)
            except Exception as exc:  # shown to the student, then raised in a cell
                state, message = "error", f"Error: {exc}"
                if raise_errors:
                    self._finish(state, message, iterator)
                    raise
            self._finish(state, message, iterator)
            return state

    def _consume(self, iterator: Any, start: float) -> tuple[str, str]:
        while True:
            if self._stop.is_set():
                return "stopped", (f"Stopped after {len(self.history)} logged steps "
                                   f"({time.monotonic() - start:.1f} s). Press Run to start again.")
            try:
                row = dict(next(iterator))
            except StopIteration as done:
                self.result = done.value
                return "done", (f"Done: {len(self.history)} logged steps in "
                                f"{time.monotonic() - start:.1f} s. {_summary(self.history)}")
            bad = [k for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)]
            if bad:
                where = row.get(self.plot.x_key, len(self.history))
                return "diverged", (f"Diverged at {self.plot.x_key} {where}: {', '.join(bad)} "
                                    f"became {row[bad[0]]}. Lower the learning rate and press Run.")
            self.history.append(row)
            if self.plot.append(row):
                self._set_status("running", f"Running… {_summary([row])}")

    def _finish(self, state: str, message: str, iterator: Any) -> None:
        if iterator is not None and hasattr(iterator, "close"):
            iterator.close()
        self.plot.redraw()
        self._set_buttons(running=False)
        self._set_status(state, message)

    def _set_buttons(self, running: bool) -> None:
        self.run_button.disabled = running
        self.stop_button.disabled = not running
        for w in self.controls.values():
            w.disabled = running

    def _set_status(self, state: str, message: str) -> None:
        self.state = state
        self.status.value = (f"<span style='color:{_COLOURS[state]}'>"
                             f"{html.escape(message)}</span>")


def _summary(history: list[dict[str, float]]) -> str:
    """The last row's metrics, rounded, for the status line."""
    if not history:
        return ""
    return " · ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in history[-1].items())
