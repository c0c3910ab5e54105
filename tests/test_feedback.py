import pytest
import torch

from dni_lite import DecoupledInterface, cosine_similarity
from dni_lite.experiments.deep_linear import DeepLinearNet, logistic_loss, train_step, true_signals
from dni_lite.feedback import FixedSynthesizer, fixed_synthesizers
from dni_lite.experiments.linear import squared_loss


def _batch(seed=0, n=16, in_dim=6, out_dim=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, in_dim, generator=g), torch.randn(n, out_dim, generator=g)


def _net(seed=0, depth=4):
    torch.manual_seed(seed)
    return DeepLinearNet(6, 5, 3, depth)


def _one_step(net, interfaces, x, y):
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    train_step(net, interfaces, opt, None, x, y, squared_loss, y)


def test_fa_with_forward_weights_as_feedback_equals_backprop():
    x, y = _batch()
    bp, fa = _net(), _net()
    _one_step(bp, {}, x, y)
    cuts = [1, 2, 3]
    synths = fixed_synthesizers("fa", fa.weights, cuts, feedback=fa.weights)
    _one_step(fa, {k: DecoupledInterface(s) for k, s in synths.items()}, x, y)
    for p_bp, p_fa in zip(bp.parameters(), fa.parameters()):
        assert torch.allclose(p_bp, p_fa, atol=1e-6)


def test_fa_with_random_feedback_differs_from_backprop():
    x, y = _batch()
    bp, fa = _net(), _net()
    _one_step(bp, {}, x, y)
    synths = fixed_synthesizers("fa", fa.weights, [1, 2, 3], seed=1)
    _one_step(fa, {k: DecoupledInterface(s) for k, s in synths.items()}, x, y)
    assert not torch.allclose(bp.layers[0].weight, fa.layers[0].weight, atol=1e-4)
    assert torch.allclose(bp.layers[-1].weight, fa.layers[-1].weight)  # the top learns from the loss


def test_dfa_signal_for_the_last_layer_is_the_true_error_gradient():
    x, y = _batch()
    net = _net()
    cut = net.depth - 1                        # the input of the last layer
    true, error = true_signals(net, x, y, squared_loss, [cut])
    # the per-example output error e = y_hat - y is what DFA sends down
    assert torch.allclose(error, (net(x) - y).detach(), atol=1e-6)
    # a DFA feedback matrix equal to the last layer's weight gives the true gradient at its input
    dfa = DecoupledInterface(FixedSynthesizer([net.layers[-1].weight]))
    h = net.layers[0](x)
    for layer in net.layers[1:-1]:
        h = layer(h)
    dfa(h, error)
    assert torch.allclose(dfa.synthetic_gradient, true[cut], atol=1e-6)
    # and in a DFA-trained network the last layer's update is exactly backprop's
    bp, d = _net(), _net()
    _one_step(bp, {}, x, y)
    synths = fixed_synthesizers("dfa", d.weights, [1, 2, 3], seed=3)
    _one_step(d, {k: DecoupledInterface(s) for k, s in synths.items()}, x, y)
    assert torch.allclose(bp.layers[-1].weight, d.layers[-1].weight)
    assert not torch.allclose(bp.layers[0].weight, d.layers[0].weight, atol=1e-4)


def test_kickback_sends_every_unit_the_summed_error():
    (s,) = fixed_synthesizers("kickback", _net().weights, [2]).values()
    error = torch.tensor([[1.0, -2.0, 0.5]])
    signal = s(torch.zeros(1, 5), error)
    assert torch.allclose(signal, torch.full((1, 5), -0.5 / 5 ** 0.5))


def test_fixed_synthesizers_have_no_parameters_and_validate():
    synths = fixed_synthesizers("dfa", _net().weights, [1, 2])
    assert all(not list(s.parameters()) for s in synths.values())
    with pytest.raises(ValueError, match="method"):
        fixed_synthesizers("hebbian", _net().weights, [1])
    with pytest.raises(ValueError, match="cut"):
        fixed_synthesizers("fa", _net().weights, [4])
    with pytest.raises(ValueError, match="context"):
        synths[1](torch.zeros(2, 5), None)
    with pytest.raises(ValueError, match="chain"):
        FixedSynthesizer([torch.zeros(3, 4), torch.zeros(5, 2)])


def test_dfa_signal_points_downhill_on_a_classifier():
    torch.manual_seed(0)
    net = DeepLinearNet(6, 5, 1, 3)
    x, _ = _batch()
    y = (x[:, :1] > 0).float()
    true, error = true_signals(net, x, y, logistic_loss, [2])
    (s,) = fixed_synthesizers("fa", net.weights, [2], feedback=net.weights).values()
    assert cosine_similarity(s(x, error), true[2]) == pytest.approx(1.0, abs=1e-6)
