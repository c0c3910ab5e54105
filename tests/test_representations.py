import pytest
import torch

from dni_lite.experiments.representations import linear_cka, linear_probe


def _data(n=200, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) @ torch.randn(d, d, generator=g)


def test_cka_of_a_representation_with_itself_is_one():
    x = _data()
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    x, y = _data(seed=0), _data(seed=1)[:, :7]
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=torch.Generator().manual_seed(2)))
    base = linear_cka(x, y)
    assert 0.0 < base < 0.9
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-6)
    assert linear_cka(3.7 * x, 0.2 * y) == pytest.approx(base, abs=1e-9)
    assert linear_cka(x @ q * 5.0, x) == pytest.approx(1.0, abs=1e-6)


def test_cka_is_not_invariant_to_anisotropic_scaling_and_is_symmetric():
    x, y = _data(seed=0), _data(seed=1)
    stretch = torch.ones(12)
    stretch[0] = 50.0
    assert linear_cka(x * stretch, y) != pytest.approx(linear_cka(x, y), abs=1e-3)
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-12)


def test_cka_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same n"):
        linear_cka(torch.randn(10, 3), torch.randn(11, 3))


def test_linear_probe_reads_a_linearly_separable_label_and_not_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 5, generator=g)
    labels = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    assert linear_probe(x[:300], labels[:300], x[300:], labels[300:]) > 90
    noise = torch.randn(400, 5, generator=g)
    assert linear_probe(noise[:300], labels[:300], noise[300:], labels[300:]) < 70
    with pytest.raises(ValueError, match="ridge"):
        linear_probe(x, labels, x, labels, ridge=0.0)


def test_nb02_exercise_checkers_accept_right_and_reject_wrong_answers():
    from dni_lite.exercises import nb02

    def centred_cka(x, y):
        x, y = x - x.mean(0), y - y.mean(0)
        return float((y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm()))

    def uncentred_cka(x, y):
        return float((y.T @ x).norm() ** 2 / ((x.T @ x).norm() * (y.T @ y).norm()))

    def product_above(weights, k):
        m = weights[-1]
        for w in reversed(weights[k:-1]):
            m = m @ w
        return m

    assert nb02.check_linear_cka(None).startswith("Not attempted")
    assert nb02.check_linear_cka(centred_cka).startswith("Correct")
    assert nb02.check_linear_cka(uncentred_cka).startswith("Not yet")
    assert nb02.check_trivial_solution("b").startswith("Correct")
    assert nb02.check_trivial_solution("d").startswith("Not yet")
    assert nb02.check_dfa_as_backprop(product_above).startswith("Correct")
    assert nb02.check_dfa_as_backprop(lambda ws, k: ws[-1][:, :5]).startswith("Not yet")
