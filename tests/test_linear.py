"""Notebook 01's experiment: validation and reproducibility."""
import itertools

import pytest

from dni_lite.runner import rows as metric_rows
from dni_lite.experiments.linear import compare_linear, make_regression


@pytest.mark.parametrize("kwargs, name", [
    (dict(model_lr=0.0), "model_lr"),
    (dict(synth_lr=-1.0), "synth_lr"),
    (dict(variants="maybe"), "variants"),
    (dict(kind="lstm"), "kind"),
    (dict(contxt="on"), "contxt"),
    (dict(lam=2.0), "lam"),
    (dict(steps=0), "steps"),
    (dict(batch_size=0), "batch_size"),
    (dict(model_lr=float("nan")), "model_lr"),
])
def test_compare_linear_rejects_bad_settings(kwargs, name):
    with pytest.raises(ValueError, match=name):
        next(compare_linear(**kwargs))


def test_make_regression_validates_and_is_seeded():
    with pytest.raises(ValueError, match="noise"):
        make_regression(noise=-0.1)
    a, b = make_regression(seed=3), make_regression(seed=3)
    assert (a.x == b.x).all() and (a.y_test == b.y_test).all()


def test_same_seed_same_numbers():
    # metric rows only: the Progress heartbeats between them follow the wall clock
    first = list(itertools.islice(metric_rows(compare_linear(steps=100)), 5))
    second = list(itertools.islice(metric_rows(compare_linear(steps=100)), 5))
    assert len(first) == 5 and first == second


def test_cdni_learns_the_exact_gradient_and_dni_does_not():
    rows = list(metric_rows(compare_linear(steps=800)))
    tail = rows[-8:]
    cos_cdni = sum(r["cos/cdni"] for r in tail) / len(tail)
    cos_dni = sum(r["cos/dni"] for r in tail) / len(tail)
    assert cos_cdni > 0.95
    assert cos_cdni - cos_dni > 0.3
    assert rows[-1]["test_loss/cdni"] < 1.05 * rows[-1]["test_loss/backprop"]
