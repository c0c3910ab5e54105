"""The experiment panel: runs, divergence, Stop and Run again, throttled redraws."""
import math
import time

import pytest

from dni_lite.controls import dropdown, float_slider, int_slider, log_slider, toggle
from dni_lite.linear import compare_linear
from dni_lite.live_plot import Plot
from dni_lite.panel import ExperimentPanel


def linear_panel(**controls):
    return ExperimentPanel(
        compare_linear,
        controls={"model_lr": log_slider("model learning rate", 0.05, 1e-3, 1.0),
                  "steps": int_slider("steps", 200, 10, 5000), **controls},
        plots=[Plot("loss", ["loss/backprop", "loss/sg"], log_y=True), Plot("cos", ["cos/sg"])],
    )


def plotted_values(panel):
    return [y for trace in panel.plot.figure.data for y in trace.y]


def test_run_completes_and_plots_every_logged_step():
    panel = linear_panel()
    assert panel.run() == "done"
    assert len(panel.history) == 20
    assert panel.status_text.startswith("Done")
    assert len(panel.plot.figure.data[0].y) == 20
    assert panel.run_button.disabled is False and panel.stop_button.disabled is True


def test_diverging_run_stops_says_so_and_plots_no_nan():
    panel = linear_panel()
    state = panel.run(model_lr=1e3)
    assert state == "diverged"
    assert "Diverged" in panel.status_text and "learning rate" in panel.status_text
    values = plotted_values(panel)
    assert all(math.isfinite(v) for v in values)
    assert all(math.isfinite(v) for row in panel.history for v in row.values())


def test_bad_setting_is_reported_and_raised():
    panel = linear_panel()
    with pytest.raises(ValueError, match="steps"):
        panel.run(steps=0)
    assert panel.state == "error" and "steps" in panel.status_text
    assert panel.run() == "done"          # the panel is still usable


def test_stop_then_run_again_works():
    def slow(steps=1000):
        for step in range(1, steps + 1):
            time.sleep(0.002)
            yield {"step": step, "value": 1.0 / step}

    panel = ExperimentPanel(slow, {"steps": int_slider("steps", 1000, 1, 1000)},
                            [Plot("value", ["value"])])
    panel.start()                         # what the Run button does
    deadline = time.monotonic() + 10
    while len(panel.history) < 5:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    panel.stop()                          # what the Stop button does
    assert panel.wait(10) == "stopped"
    assert 5 <= len(panel.history) < 1000
    assert "Stopped" in panel.status_text
    assert panel.run(steps=30) == "done"  # a new Run starts afresh
    assert [r["step"] for r in panel.history] == list(range(1, 31))


def test_buttons_drive_the_run():
    panel = linear_panel()
    panel.controls["steps"].value = 50
    panel.run_button.click()
    assert panel.wait(30) == "done"
    assert len(panel.history) == 5


def test_redraws_are_throttled():
    def fast(steps=2000):
        for step in range(steps):
            yield {"step": step, "value": float(step)}

    panel = ExperimentPanel(fast, {"steps": int_slider("steps", 2000, 1, 2000)},
                            [Plot("value", ["value"])], max_fps=5)
    start = time.monotonic()
    panel.run()
    elapsed = time.monotonic() - start
    # at most 5 redraws per second, plus the reset and the final redraw
    assert panel.plot.redraws <= 5 * elapsed + 3
    assert len(panel.plot.figure.data[0].y) == 2000


def test_controls_only_offer_valid_values():
    slider = int_slider("steps", 10, 1, 100)
    slider.value = 1000
    assert slider.value == 100
    lr = log_slider("lr", 0.1, 1e-3, 1.0)
    lr.value = 50.0
    assert lr.value <= 1.0
    with pytest.raises(ValueError):
        float_slider("x", 2.0, 0.0, 1.0)
    with pytest.raises(ValueError):
        dropdown("d", ["a", "b"], "c")
    assert toggle("t", True).value is True


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
