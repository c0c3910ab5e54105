import pytest
import torch

from dni_lite.experiments.deep_linear import (DeepLinearNet, compare_deep_linear, compare_methods,
                                  make_digits, tail_mean)
from dni_lite.runner import rows as metric_rows


def test_lambda_one_reproduces_backprop_exactly():
    rows = list(metric_rows(compare_deep_linear(depth=6, steps=60, log_every=10, variants="none",
                                                sweep=(0.0, 1.0))))
    assert all(r["test_loss/lam=1"] == r["test_loss/backprop"] for r in rows)
    assert any(r["test_loss/lam=0"] != r["test_loss/backprop"] for r in rows)


def test_cdni_tracks_backprop_on_the_deep_linear_regression():
    rows = list(metric_rows(compare_deep_linear(depth=6, steps=300, variants="cdni")))
    assert rows[-1]["cos/cdni"] > 0.8
    assert tail_mean(rows, "test_loss/cdni", 3) < 0.6 * rows[0]["test_loss/cdni"]
    assert tail_mean(rows, "test_loss/cdni", 3) < 1.3 * tail_mean(rows, "test_loss/backprop", 3)


def test_compare_methods_runs_every_method_from_the_same_start():
    rows = list(metric_rows(compare_methods(method="all", steps=20, log_every=10)))
    names = ["backprop", "no_backprop", "dni", "cdni", "fa", "dfa", "kickback"]
    assert [k for k in rows[-1] if k.startswith("acc/")] == [f"acc/{n}" for n in names]
    assert all(0.0 <= rows[-1][f"acc/{n}"] <= 100.0 for n in names)     # percent
    assert all(k in rows[-1] for k in ["cos/fa", "cos/dfa", "cos/kickback", "cos/dni", "cos/cdni"])


def test_net_shapes_activations_and_validation():
    net = DeepLinearNet(4, 3, 2, 5)
    assert net.depth == 5
    hs = net.activations(torch.zeros(7, 4))
    assert [tuple(h.shape) for h in hs] == [(7, 3)] * 4
    with pytest.raises(ValueError, match="depth"):
        next(compare_deep_linear(depth=1))
    with pytest.raises(ValueError, match="lam"):
        next(compare_deep_linear(lam=1.5))
    with pytest.raises(ValueError, match="method"):
        next(compare_methods(method="rmsprop"))


def test_digits_task_is_standardised_and_binary():
    d = make_digits()
    assert d.x.shape == (1300, 64) and d.x_test.shape == (497, 64)
    assert set(d.y.unique().tolist()) == {0.0, 1.0}
    assert d.x.mean().abs() < 0.05


def test_a_diverging_run_reports_a_non_finite_metric():
    rows = list(metric_rows(compare_methods(method="fa", model_lr=50.0, steps=200, log_every=10)))
    assert any(v != v or abs(v) == float("inf") for r in rows for v in r.values())
    rows = list(metric_rows(compare_deep_linear(depth=6, model_lr=5.0, steps=100, log_every=10,
                                                variants="cdni")))
    assert any(v != v or abs(v) == float("inf") for r in rows for v in r.values())


def test_label_free_dni_learns_with_an_mlp_synthesizer_not_with_a_linear_one():
    mlp = list(metric_rows(compare_methods(method="dni", dni_synthesizer="mlp", dni_synth_lr=2.0,
                                           steps=800)))[-1]
    assert mlp["acc/dni"] >= mlp["acc/no_backprop"] + 5, mlp
    linear = list(metric_rows(compare_methods(method="dni", steps=800)))[-1]
    assert linear["acc/dni"] <= linear["acc/no_backprop"] + 15, linear
    with pytest.raises(ValueError, match="dni_synthesizer"):
        next(compare_methods(dni_synthesizer="lstm"))
    with pytest.raises(ValueError, match="dni_synth_lr"):
        next(compare_methods(dni_synth_lr=0.0))
