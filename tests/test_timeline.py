"""The timeline simulator against cases whose answer is known in closed form."""
import pytest

from dni_lite.experiments.timeline import (MODES, Costs, backprop_idle_fraction, compare, simulate,
                                          pipeline_bubble, pipeline_order,
                               speedup_curve)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_backprop_equal_costs_idle_fraction_is_k_minus_1_over_k(k):
    t = simulate(Costs.uniform(k, forward=1.0, backward=1.0), "backprop", minibatches=6)
    assert t.makespan == pytest.approx(6 * 2 * k)
    for worker in range(k):
        assert t.idle_fraction[worker] == pytest.approx((k - 1) / k)
    assert t.speedup == pytest.approx(1.0)


def test_backprop_with_delay_and_unequal_costs_matches_formula():
    costs = Costs([1.0, 2.0, 0.5], [2.0, 3.0, 1.0], synth=0.3, delay=0.25)
    t = simulate(costs, "backprop", minibatches=4)
    step = 3.5 + 6.0 + 2 * 2 * 0.25
    assert t.makespan == pytest.approx(4 * step)
    for w in range(3):
        assert t.idle_fraction[w] == pytest.approx(backprop_idle_fraction(costs, w))
    assert t.throughput == pytest.approx(1 / step)


@pytest.mark.parametrize("k,n", [(2, 1), (4, 10), (6, 100)])
def test_sg_pipeline_fill_formula(k, n):
    # equal costs f = b = 1, no synth cost, no delay: worker i starts i steps late,
    # then one minibatch every 2 units -> makespan 2n + k - 1
    t = simulate(Costs.uniform(k, 1.0, 1.0), "decoupled", minibatches=n)
    assert t.makespan == pytest.approx(2 * n + k - 1)
    assert t.speedup == pytest.approx(2 * k * n / (2 * n + k - 1))


def test_sg_with_synth_and_delay_formula():
    k, n, f, b, s, c = 4, 7, 1.0, 2.0, 0.5, 0.3
    t = simulate(Costs.uniform(k, f, b, s, c), "decoupled", minibatches=n)
    period = f + s + b
    expected = (n - 1) * period + max((k - 2) * (f + c) + period, (k - 1) * (f + c) + f + b)
    assert t.makespan == pytest.approx(expected)


@pytest.mark.parametrize("k", [2, 4, 8])
def test_unlocked_reaches_k_times_throughput(k):
    t = simulate(Costs.uniform(k, 1.0, 2.0, synth=0.0, delay=0.5), "unlocked", minibatches=3)
    assert t.speedup == pytest.approx(k * (1 + 2 * 0.5 * (k - 1) / (3 * k)))  # delay hurts backprop
    t0 = simulate(Costs.uniform(k, 1.0, 2.0), "unlocked", minibatches=3)
    assert t0.speedup == pytest.approx(k)
    assert max(t0.idle_fraction) == pytest.approx(0.0)


def test_speedup_approaches_k_as_minibatches_grow():
    k = 4
    sg = [simulate(Costs.uniform(k, 1.0, 1.0), "decoupled", n).speedup for n in (1, 10, 100, 1000)]
    assert sg == sorted(sg) and sg[-1] > 0.99 * k and sg[0] < 0.5 * k


def test_synthesizer_cost_is_paid_per_synthesizer():
    t = simulate(Costs.uniform(3, 1.0, 1.0, synth=0.5), "unlocked", minibatches=2)
    # bottom and top host one synthesizer, the middle module two (input and gradient)
    assert t.busy == pytest.approx([2 * 2.5, 2 * 3.0, 2 * 2.5])
    s = simulate(Costs.uniform(3, 1.0, 1.0, synth=0.5), "decoupled", minibatches=2)
    assert s.busy == pytest.approx([2 * 2.5, 2 * 2.5, 2 * 2.0])


def test_intervals_never_overlap_and_respect_dependencies():
    costs = Costs([1.0, 0.5, 2.0], [1.5, 1.0, 3.0], synth=0.2, delay=0.1)
    for mode, t in compare(costs, minibatches=5).items():
        for w in range(3):
            ivs = t.worker_intervals(w)
            assert all(a.end <= b.start + 1e-9 for a, b in zip(ivs, ivs[1:])), mode
            busy_gaps = sum(iv.duration for iv in ivs) + sum(e - s for s, e in t.idle_intervals(w))
            assert busy_gaps == pytest.approx(t.makespan)
        fwd = {(iv.worker, iv.minibatch): iv for iv in t.intervals if iv.kind == "forward"}
        if mode != "unlocked":   # forward locking: module i waits for module i-1's output
            for (w, n), iv in fwd.items():
                if w > 0:
                    assert iv.start >= fwd[(w - 1, n)].end + 0.1 - 1e-9
    assert set(compare(costs)) == set(MODES)


def test_speedup_curve_shapes():
    curve = speedup_curve([1, 2, 4], minibatches=50)
    assert curve["backprop"] == pytest.approx([1.0, 1.0, 1.0])
    assert curve["unlocked"] == pytest.approx([1.0, 2.0, 4.0])
    assert curve["decoupled"][0] == pytest.approx(1.0) and 1.0 < curve["decoupled"][2] < 4.0


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="mode"):
        simulate(Costs.uniform(2), "async")
    with pytest.raises(ValueError, match="minibatches"):
        simulate(Costs.uniform(2), "decoupled", 0)
    with pytest.raises(ValueError, match="backward"):
        Costs([1.0, 1.0], [1.0])
    with pytest.raises(ValueError, match=r"forward\[1\]"):
        Costs([1.0, -1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="delay"):
        Costs.uniform(2, delay=float("nan"))
    with pytest.raises(ValueError, match="modules"):
        Costs.uniform(0)
    with pytest.raises(ValueError, match="zero"):
        simulate(Costs.uniform(2, 0.0, 0.0), "decoupled")
    with pytest.raises(ValueError, match="costs"):
        simulate({"forward": [1]}, "decoupled")


def test_locking_panel_redraws_when_a_slider_moves():
    from dni_lite.display.timeline_plots import LockingPanel
    from dni_lite.experiments.timeline import LockingSettings
    panel = LockingPanel(LockingSettings(modules=4, synth=0.0, minibatches=8))
    assert "backprop: speed-up 1.00x, mean idle 75%" in panel.readout_text
    bars_before = len(panel.figure.data[0].x)
    panel.controls["modules"].value = 8
    assert len(panel.figure.data[0].x) == 2 * bars_before      # one forward bar per worker per minibatch
    assert "mean idle 88%" in panel.readout_text
    assert panel.timelines["unlocked"].speedup == pytest.approx(8.0)
    assert list(panel.figure.data[-1].y) == list(range(1, 9))  # the ideal K line


@pytest.mark.parametrize("mode", ["gpipe", "1f1b"])
@pytest.mark.parametrize("k,m", [(2, 1), (2, 4), (4, 4), (4, 8), (8, 3)])
@pytest.mark.parametrize("f,b", [(1.0, 1.0), (1.0, 2.0), (0.5, 3.0)])
def test_pipeline_backprop_bubble_is_k_minus_1_over_m_plus_k_minus_1(mode, k, m, f, b):
    t = simulate(Costs.uniform(k, f, b), mode, minibatches=5, micro_batches=m)
    assert t.idle_fraction == pytest.approx([pipeline_bubble(k, m)] * k)
    assert pipeline_bubble(k, m) == pytest.approx((k - 1) / (m + k - 1))
    assert t.speedup == pytest.approx(k * m / (m + k - 1))
    # a flush per minibatch: no minibatch's forward starts on a worker before that
    # worker's last backward of the minibatch before
    for w in range(k):
        ivs = t.worker_intervals(w)
        for a, b_ in zip(ivs, ivs[1:]):
            assert a.minibatch <= b_.minibatch


def test_one_micro_batch_is_plain_backprop_and_1f1b_holds_fewer_activations():
    costs = Costs([1.0, 2.0, 0.5], [2.0, 1.0, 3.0], delay=0.2)
    for mode in ("gpipe", "1f1b"):
        one = simulate(costs, mode, minibatches=3, micro_batches=1)
        assert one.makespan == pytest.approx(simulate(costs, "backprop", 3).makespan)

    def most_in_flight(mode: str, worker: int) -> int:   # forwards done, backward not yet
        held = most = 0
        for kind, _ in pipeline_order(mode, worker, 4, 8):
            held += 1 if kind == "forward" else -1
            most = max(most, held)
        return most
    assert most_in_flight("gpipe", 0) == 8
    assert most_in_flight("1f1b", 0) == 4 and most_in_flight("1f1b", 3) == 1


def test_pipeline_messages_respect_dependencies_with_delay():
    costs = Costs([1.0, 0.5, 2.0], [1.5, 1.0, 3.0], delay=0.1)
    for mode in ("gpipe", "1f1b"):
        t = simulate(costs, mode, minibatches=3, micro_batches=4)
        end = {(iv.worker, iv.kind, iv.minibatch, iv.micro): iv for iv in t.intervals}
        for (w, kind, n, j), iv in end.items():
            source = w - 1 if kind == "forward" else w + 1
            if 0 <= source < 3:
                assert iv.start >= end[(source, kind, n, j)].end + 0.1 - 1e-9
        with pytest.raises(ValueError, match="micro_batches"):
            simulate(costs, mode, micro_batches=0)
