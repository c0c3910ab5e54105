"""Forward unlocking, stochastic and stale updates on notebook 03's decoupled MLP."""
import pytest
import torch

from dni_lite.experiments.mlp import MLP, DecoupledMLP, compare_mlp
from dni_lite.runner import rows as metric_rows, run_to_end
from dni_lite.experiments.unlock import (SyntheticInput, Unlocking, UnlockedMLP, compare_unlocked,
                             complete_unlocking, input_step, stale_synthesizer_step,
                             staleness, stochastic_updates)

SMALL = dict(epochs=1, n_train=640, width=32, log_every=5)


def _setup(mode="dni", depth=2, width=16, seed=0):
    torch.manual_seed(seed)
    return DecoupledMLP(MLP(8, 3, depth, width), mode, n_classes=3)


def _batch(seed=0, n=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_synthetic_input_regresses_toward_the_real_input():
    torch.manual_seed(0)
    w = torch.randn(8, 16)
    model = SyntheticInput(8, 16, kind="mlp", hidden_dim=64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.randn(256, 8)
    real = torch.relu(x @ w)
    first = float(model.regression_loss(x, real).detach())
    for _ in range(300):
        last = input_step(model, opt, x, real)
    assert last < 0.1 * first
    assert float((model(x) >= 0).float().mean()) == 1.0        # ReLU outputs, like its targets
    with pytest.raises(ValueError, match="real_input"):
        model.regression_loss(x, real[:10])
    with pytest.raises(ValueError, match="kind"):
        SyntheticInput(8, 16, kind="rnn")


def test_linear_synthetic_input_learns_an_affine_map_exactly():
    torch.manual_seed(1)
    w, b = torch.randn(8, 4), torch.randn(4)
    model = SyntheticInput(8, 4, kind="linear")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x = torch.randn(128, 8)
    for _ in range(800):
        loss = input_step(model, opt, x, x @ w + b)
    assert loss < 1e-4


@pytest.mark.parametrize("method", ["dni", "cdni"])
def test_p1_matches_notebook_03s_decoupled_run_exactly(method):
    _, reference = run_to_end(compare_mlp(variants=method, no_backprop=True, seed=3,
                                          synth_lr=1e-3, **SMALL))
    _, ours = run_to_end(compare_unlocked({"sg": Unlocking(), "nb": None}, method=method,
                                          seed=3, synth_lr=1e-3, **SMALL))
    assert ours.final("acc")["sg"] == reference.final("acc")[method]
    assert ours.final("acc")["nb"] == reference.final("acc")["no_backprop"]
    for a, b in zip(reference.trainers[method].setup.parameters(),
                    ours.trainers["sg"].setup.parameters()):
        assert torch.equal(a, b)          # layers and synthesizers, bit for bit


def test_p0_updates_no_layer():
    setup = _setup()
    before = [p.detach().clone() for p in setup.model.parameters()]
    synth_before = [p.detach().clone() for p in setup.interfaces[0].parameters()]
    trainer = UnlockedMLP(setup, Unlocking(p=0.0))
    for i in range(5):
        trainer.step(*_batch(i))
    assert all(torch.equal(a, p) for a, p in zip(before, setup.model.parameters()))
    # the synthesizers still regress toward the gradients the frozen layers send down
    assert not all(torch.equal(a, p) for a, p in zip(synth_before, setup.interfaces[0].parameters()))


def test_stochastic_updates_move_about_a_fraction_p_of_the_layers():
    setup = _setup(depth=3)
    trainer = UnlockedMLP(setup, Unlocking(p=0.3), seed=5)
    moved = 0
    for i in range(40):
        before = [m[0].weight.detach().clone() if isinstance(m, torch.nn.Sequential) else
                  m.weight.detach().clone() for m in setup.model.layers]
        trainer.step(*_batch(i))
        after = [m[0].weight if isinstance(m, torch.nn.Sequential) else m.weight
                 for m in setup.model.layers]
        moved += sum(not torch.equal(a, b) for a, b in zip(before, after))
    assert 0.15 < moved / (40 * 4) < 0.45


def test_delay_d_starts_synthesizer_regression_d_steps_late():
    setup = _setup()
    trainer = UnlockedMLP(setup, Unlocking(delay=3))
    keys = [sorted(k for k in trainer.step(*_batch(i)) if k.startswith("synth_loss"))
            for i in range(5)]
    assert keys[:3] == [[], [], []] and keys[3] == ["synth_loss/L1", "synth_loss/L2"]


def test_stale_synthesizer_step_with_fresh_pair_equals_the_interface_loss():
    setup = _setup()
    iface = setup.interfaces[0]
    h = torch.randn(16, 16)
    iface(h)
    target = torch.randn(16, 16) / 16
    expected = float(iface.synthesizer_loss(target).detach())
    got = stale_synthesizer_step(iface.synthesizer, torch.optim.SGD(iface.parameters(), lr=0.0),
                                 h, None, target)
    assert got == pytest.approx(expected)


def test_forward_unlocking_feeds_layers_synthetic_inputs_and_the_error_falls():
    rows, result = run_to_end(compare_unlocked({"u": Unlocking(forward="all")}, depth=2,
                                               seed=0, **{**SMALL, "epochs": 3}))
    first, last = rows[0], rows[-1]
    for layer in ("L2", "L3"):
        assert last[f"input_err/u/{layer}"] < first[f"input_err/u/{layer}"]
    assert set(result.trainers["u"].inputs) == {1, 2}
    top = UnlockedMLP(_setup(), Unlocking(forward="top"))
    assert list(top.inputs) == [2]


def test_experiments_yield_their_variants():
    row = next(metric_rows(stochastic_updates(p=0.5, **SMALL)))
    assert {"acc/no_backprop", "acc/every_step", "acc/stochastic"} <= set(row)
    row = next(metric_rows(staleness(delay=8, forward_unlock=True, **SMALL)))
    assert {"acc/d0", "acc/d_quarter", "acc/d_full", "input_err/d0/L2"} <= set(row)
    row = next(metric_rows(complete_unlocking(**SMALL)))
    assert {"acc/update_decoupled", "acc/unlocked", "input_err/unlocked/L4"} <= set(row)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="p"):
        Unlocking(p=1.5)
    with pytest.raises(ValueError, match="delay"):
        Unlocking(delay=-1)
    with pytest.raises(ValueError, match="forward"):
        Unlocking(forward="middle")
    with pytest.raises(ValueError, match="every boundary"):
        UnlockedMLP(DecoupledMLP(MLP(8, 3, 2, 16), "backprop", n_classes=3))
    with pytest.raises(ValueError, match="variants"):
        next(compare_unlocked({}))
    with pytest.raises(ValueError, match="method"):
        next(compare_unlocked({"a": Unlocking()}, method="backprop"))
    with pytest.raises(ValueError, match="delay"):
        next(staleness(delay=-2))
