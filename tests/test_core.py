"""The decoupled interface and synthesizer: exactness and validation."""
import math

import pytest
import torch
from torch import nn

from dni_lite import DecoupledInterface, Synthesizer, cosine_similarity, relative_error
from dni_lite.diagnostics import activation_health
from dni_lite.interface import regression_loss
from dni_lite.experiments.linear import LinearNet, backprop_step, dni_step, make_regression, squared_loss


def _pair(seed=0):
    torch.manual_seed(seed)
    a, b = LinearNet(10, 8, 5), LinearNet(10, 8, 5)
    b.load_state_dict(a.state_dict())
    return a, b


class OracleSynthesizer(nn.Module):
    """Returns the true per-example gradient: it knows the upper module and sees y."""

    def __init__(self, upper: nn.Linear):
        super().__init__()
        self.upper = upper
        self.context_dim = 5
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, h, context):
        w, b = self.upper.weight.detach(), self.upper.bias.detach()
        return (h @ w.T + b - context) @ w + 0 * self.dummy


def test_oracle_synthesizer_gives_exactly_backprops_update():
    data = make_regression(seed=1)
    bp, sg = _pair()
    bp_opt = torch.optim.SGD(bp.parameters(), lr=0.05)
    sg_opt = torch.optim.SGD(sg.parameters(), lr=0.05)
    iface = DecoupledInterface(OracleSynthesizer(sg.upper))
    synth_opt = torch.optim.SGD(iface.parameters(), lr=0.0)
    for i in range(20):
        x, y = data.x[32 * i:32 * (i + 1)], data.y[32 * i:32 * (i + 1)]
        backprop_step(bp, bp_opt, x, y)
        out = dni_step(sg, iface, sg_opt, synth_opt, x, y)
        assert out["cosine"] == pytest.approx(1.0, abs=1e-6)
    for p, q in zip(bp.parameters(), sg.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)


def test_lambda_one_equals_backprop_even_with_a_wrong_synthesizer():
    data = make_regression(seed=2)
    bp, sg = _pair(3)
    bp_opt = torch.optim.SGD(bp.parameters(), lr=0.05)
    sg_opt = torch.optim.SGD(sg.parameters(), lr=0.05)
    synth = Synthesizer(8, zero_init=False)           # random, wrong predictions
    iface = DecoupledInterface(synth, lam=1.0)
    synth_opt = torch.optim.SGD(synth.parameters(), lr=0.1)
    for i in range(30):
        x, y = data.x[32 * i:32 * (i + 1)], data.y[32 * i:32 * (i + 1)]
        backprop_step(bp, bp_opt, x, y)
        dni_step(sg, iface, sg_opt, synth_opt, x, y)
    for p, q in zip(bp.parameters(), sg.parameters()):
        assert (p - q).abs().max() <= 1e-6


def test_lambda_mixes_true_and_synthetic_gradient():
    synth = Synthesizer(4, zero_init=False)
    iface = DecoupledInterface(synth, lam=0.25)
    h = torch.randn(8, 4, requires_grad=True)
    up = iface(h)
    (up ** 2).sum().div(8).backward()
    true = iface.received_gradient.clone()
    signal = iface.backward()
    expected = 0.25 * true + 0.75 * synth(h.detach()).detach() / 8
    torch.testing.assert_close(signal, expected)
    torch.testing.assert_close(h.grad, expected)


def test_zero_initialised_synthesizer_moves_nothing_at_step_zero():
    torch.manual_seed(0)
    model = LinearNet(10, 8, 5)
    before = [p.detach().clone() for p in model.lower.parameters()]
    iface = DecoupledInterface(Synthesizer(8, context_dim=5, kind="mlp"))
    opt = torch.optim.SGD(model.lower.parameters(), lr=1.0)   # only the lower module
    synth_opt = torch.optim.SGD(iface.parameters(), lr=0.1)
    data = make_regression(seed=0)
    dni_step(model, iface, opt, synth_opt, data.x[:32], data.y[:32])
    assert iface.synthetic_gradient.abs().max() == 0
    for p, q in zip(before, model.lower.parameters()):
        assert torch.equal(p, q)


def _fit(synth: Synthesizer, h, c, target, steps: int) -> list[float]:
    """Regress ``synth`` on a fixed raw target through an interface (Adam 1e-2); its losses."""
    iface = DecoupledInterface(synth)
    opt = torch.optim.Adam(synth.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        iface(h, c)
        loss = iface.synthesizer_loss(target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_synthesizer_loss_falls_on_a_fixed_target():
    torch.manual_seed(0)
    synth = Synthesizer(6, context_dim=2, kind="mlp", hidden_dim=32)
    h, c = torch.randn(64, 6), torch.randn(64, 2)
    target = (h @ torch.randn(6, 6) + c @ torch.randn(2, 6)) / 64     # a raw gradient
    losses = _fit(synth, h, c, target, 200)
    assert losses[-1] < 0.05 * losses[0]


def test_projected_synthesizer_learns_through_fixed_random_directions():
    torch.manual_seed(0)
    synth = Synthesizer(16, context_dim=3, projection=4)
    # the directions are a buffer, saved with the weights but never trained
    assert "directions" in synth.state_dict()
    assert sum(p.numel() for p in synth.parameters()) == (4 + 3) * 16 + 16
    directions = synth.directions.clone()
    h, c = torch.randn(64, 16), torch.randn(64, 3)
    assert synth(h, c).abs().max() == 0                   # zero-initialised: predicts nothing yet
    # a target it can express: a linear map of what it sees (4 directions of h, and c)
    target = ((h @ directions) @ torch.randn(4, 16) + c @ torch.randn(3, 16)) / 64
    losses = _fit(synth, h, c, target, 300)
    assert losses[-1] < 0.05 * losses[0]
    assert torch.equal(synth.directions, directions)
    # a target outside those directions stays out of reach (the control: it only sees 4 of 16)
    target = h @ torch.randn(16, 16) / 64
    losses = _fit(Synthesizer(16, projection=4), h, None, target, 300)
    assert losses[-1] > 0.5 * regression_loss(torch.zeros(64, 16), target).item()


def test_received_gradient_is_the_true_gradient_at_the_cut():
    torch.manual_seed(0)
    model = LinearNet(10, 8, 5)
    x, y = torch.randn(16, 10), torch.randn(16, 5)
    h = model.lower(x)
    (expected,) = torch.autograd.grad(squared_loss(model.upper(h), y), h, retain_graph=True)
    iface = DecoupledInterface(Synthesizer(8))
    squared_loss(model.upper(iface(h)), y).backward()
    torch.testing.assert_close(iface.received_gradient, expected)


def test_diagnostics():
    a = torch.randn(5, 3)
    assert cosine_similarity(a, 2 * a) == pytest.approx(1.0)
    assert cosine_similarity(a, -a) == pytest.approx(-1.0)
    assert relative_error(a, a) == 0.0
    assert relative_error(torch.zeros(5, 3), a) == pytest.approx(1.0)
    assert cosine_similarity(torch.zeros(3), a[0]) == 0.0


def test_activation_health_counts_units_that_never_fire():
    h = torch.tensor([[3.0, 0.0, 0.0, 1.0], [4.0, 0.0, 2.0, 0.0]])
    health = activation_health(h)
    assert health["norm"] == pytest.approx((math.sqrt(10) + math.sqrt(20)) / 2)
    assert health["dead"] == pytest.approx(0.25)      # only unit 1 is zero on both examples
    with pytest.raises(ValueError, match="h must be"):
        activation_health(torch.ones(3))


@pytest.mark.parametrize("kwargs, name", [
    (dict(dim=0), "dim"),
    (dict(dim=4, context_dim=-1), "context_dim"),
    (dict(dim=4, kind="rnn"), "kind"),
    (dict(dim=4, hidden_dim=0), "hidden_dim"),
    (dict(dim=4, zero_init="yes"), "zero_init"),
    (dict(dim=4, projection=-1), "projection"),
    (dict(dim=4, projection=1.5), "projection"),
])
def test_synthesizer_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        Synthesizer(**kwargs)


def test_interface_and_context_validation():
    with pytest.raises(ValueError, match="lam"):
        DecoupledInterface(Synthesizer(4), lam=1.5)
    with pytest.raises(ValueError, match="synthesizer"):
        DecoupledInterface("not a module")
    with pytest.raises(ValueError, match="context"):
        Synthesizer(4, context_dim=2)(torch.randn(3, 4))
    with pytest.raises(ValueError, match="context"):
        Synthesizer(4, context_dim=2)(torch.randn(3, 4), torch.randn(3, 3))
    iface = DecoupledInterface(Synthesizer(4), lam=0.5)
    iface(torch.randn(3, 4, requires_grad=True))
    with pytest.raises(ValueError, match="true_gradient"):
        iface.backward()
    with pytest.raises(ValueError, match="target"):
        iface.synthesizer_loss()
