"""The experiment panel: runs, divergence, Stop and Run again, throttled redraws, the contract."""
import math
import time
from dataclasses import dataclass

import pytest

from dni_lite.display.controls import dropdown, float_slider, int_slider, log_slider, toggle
from dni_lite.display.live_plot import Plot
from dni_lite.display.panel import ExperimentPanel
from dni_lite.experiments.linear import LinearSettings, compare_linear
from dni_lite.runner import Result, Settings
from dni_lite.validate import check_int


def linear_panel(**controls):
    return ExperimentPanel(
        compare_linear, LinearSettings(steps=200),
        controls={"model_lr": log_slider("model learning rate", 1e-3, 1.0),
                  "steps": int_slider("steps", 10, 5000), **controls},
        plots=[Plot("loss", ["test_loss/backprop", "test_loss/dni"], log_y=True),
               Plot("cos", ["cos/dni"])],
    )


@dataclass(frozen=True)
class CountSettings(Settings):
    steps: int = 1000
    delay_s: float = 0.0

    def validate(self) -> None:
        check_int("steps", self.steps, 1)


def count(settings: CountSettings):
    for step in range(1, settings.steps + 1):
        if settings.delay_s:
            time.sleep(settings.delay_s)
        yield {"step": step, "value": 1.0 / step}
    return "counted"


def plotted_values(panel):
    return [y for trace in panel.plot.figure.data for y in trace.y]


def test_run_completes_plots_every_logged_step_and_returns_rows_and_result():
    panel = linear_panel()
    rows, result = panel.run()
    assert panel.state == "done" and len(rows) == 20 and rows == panel.history
    assert isinstance(result, Result) and result.last == rows[-1]
    assert panel.status_text.startswith("Done")
    assert len(panel.plot.figure.data[0].y) == 20
    assert panel.run_button.disabled is False and panel.stop_button.disabled is True


def test_controls_take_their_defaults_from_the_settings_object():
    panel = linear_panel()
    assert panel.controls["model_lr"].value == LinearSettings().model_lr
    assert panel.controls["steps"].value == 200
    assert panel.settings() == LinearSettings(steps=200)


def test_a_misspelt_control_fails_when_the_panel_is_built():
    with pytest.raises(ValueError, match="'stepz' is not a setting of LinearSettings"):
        linear_panel(stepz=int_slider("steps", 1, 10))


def test_a_control_that_cannot_show_its_default_fails_when_the_panel_is_built():
    with pytest.raises(ValueError, match="'steps' cannot show the default 200"):
        ExperimentPanel(compare_linear, LinearSettings(steps=200),
                        {"steps": int_slider("steps", 1, 100)}, [Plot("l", ["cos/dni"])])
    with pytest.raises(ValueError, match="'kind' cannot show the default 'linear'"):
        ExperimentPanel(compare_linear, LinearSettings(),
                        {"kind": dropdown("synthesizer", ["mlp"])}, [Plot("l", ["cos/dni"])])


def test_diverging_run_stops_says_so_and_plots_no_nan():
    panel = linear_panel()
    rows, result = panel.run(model_lr=1e3)
    assert panel.state == "diverged" and result is None
    assert "Diverged" in panel.status_text and "learning rate" in panel.status_text
    values = plotted_values(panel)
    assert all(math.isfinite(v) for v in values)
    assert all(math.isfinite(v) for row in rows for v in row.values())


def test_bad_setting_is_reported_and_raised():
    panel = linear_panel()
    with pytest.raises(ValueError, match="steps"):
        panel.run(steps=0)
    assert panel.state == "error" and "steps" in panel.status_text
    panel.run()
    assert panel.state == "done"          # the panel is still usable


def test_stop_then_run_again_works():
    panel = ExperimentPanel(count, CountSettings(delay_s=0.002),
                            {"steps": int_slider("steps", 1, 1000)}, [Plot("value", ["value"])])
    panel.start()                         # what the Run button does
    deadline = time.monotonic() + 10
    while len(panel.history) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    panel.stop()                          # what the Stop button does
    assert panel.wait(10) == "stopped"
    assert 5 <= len(panel.history) < 1000
    assert "Stopped" in panel.status_text
    rows, result = panel.run(steps=30)    # a new Run starts afresh
    assert [r["step"] for r in rows] == list(range(1, 31)) and result == "counted"


def test_buttons_drive_the_run():
    panel = linear_panel()
    panel.controls["steps"].value = 50
    panel.run_button.click()
    assert panel.wait(30) == "done"
    assert len(panel.history) == 5
    assert panel.settings_used == LinearSettings(steps=50)


def test_redraws_are_throttled():
    panel = ExperimentPanel(count, CountSettings(steps=2000),
                            {"steps": int_slider("steps", 1, 2000)}, [Plot("value", ["value"])],
                            max_fps=5)
    start = time.monotonic()
    panel.run()
    elapsed = time.monotonic() - start
    # at most 5 redraws per second, plus the reset and the final redraw
    assert panel.plot.redraws <= 5 * elapsed + 3
    assert len(panel.plot.figure.data[0].y) == 2000


def test_controls_only_offer_valid_values():
    slider = int_slider("steps", 1, 100)
    slider.value = 1000
    assert slider.value == 100
    lr = log_slider("lr", 1e-3, 1.0)
    lr.value = 50.0
    assert lr.value <= 1.0
    with pytest.raises(ValueError):
        float_slider("x", 2.0, 1.0)
    with pytest.raises(ValueError):
        dropdown("d", [])
    assert toggle("t").value is False


def test_background_run_is_as_fast_as_a_run_in_the_cell():
    import torch
    torch.set_num_threads(1)
    panel = linear_panel()
    panel.controls["steps"].value = 300
    start = time.monotonic()
    panel.run()
    in_cell = time.monotonic() - start
    start = time.monotonic()
    panel.start()
    assert panel.wait(60) == "done"
    in_thread = time.monotonic() - start
    assert in_thread < 3 * in_cell + 1.0, (in_thread, in_cell)
