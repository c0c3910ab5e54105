"""The decoupled MLP: bootstrapped targets, exact backprop limit, side diagnostics."""
import copy

import pytest
import torch
import torch.nn.functional as F

torch.set_num_threads(1)   # the course machine has 2 shared cores

from dni_lite.runner import Result, run_to_end
from dni_lite.experiments.mlp import (MLP, DecoupledMLP, compare_mlp, cut_modes, layer_step,
                          make_stages, synthesizer_step, true_gradients)


def _batch(n=16, in_dim=6, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, in_dim, generator=g), torch.randint(0, classes, (n,), generator=g)


def _setup(modes, seed=0, **kw):
    torch.manual_seed(seed)
    model = MLP(6, 4, depth=len(modes), width=8)
    return DecoupledMLP(model, modes, n_classes=4, zero_init=False, **kw)


def test_stages_group_backprop_runs():
    assert make_stages(["dni", "dni", "dni"]) == [[0], [1], [2], [3]]
    assert make_stages(["backprop"] * 3) == [[0, 1, 2, 3]]
    assert make_stages(["cdni", "backprop", "none"]) == [[0], [1, 2], [3]]
    assert cut_modes(4, "dni", "alternate") == ["dni", "backprop", "dni", "backprop"]
    with pytest.raises(ValueError, match="modes\\[1\\]"):
        make_stages(["dni", "bp"])


def test_all_backprop_update_equals_plain_backprop():
    x, y = _batch()
    setup = _setup(["backprop"] * 3)
    plain = copy.deepcopy(setup.model)
    opt = torch.optim.Adam(plain.parameters(), lr=1e-3)
    for _ in range(3):
        setup.step(x, y)
        opt.zero_grad()
        F.cross_entropy(plain(x), y).backward()
        opt.step()
    for a, b in zip(setup.model.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)


def test_bootstrapped_target_is_gradient_the_layer_above_computed_from_its_synthetic_gradient():
    x, y = _batch()
    setup = _setup(["dni", "cdni", "dni"])
    # warm the synthesizers up so that the synthetic gradients are not zero
    for _ in range(3):
        setup.step(x, y)
    layers, ifaces = setup.model.layers, setup.interfaces
    snapshot = copy.deepcopy(setup.model)
    synth_snapshot = [copy.deepcopy(i.synthesizer) for i in ifaces]
    seen = {}
    original = synthesizer_step

    def spy(interface, optimizer, target=None):
        seen[ifaces.index(interface)] = (target.clone(), interface.received_gradient.clone())
        return original(interface, optimizer, target)

    import dni_lite.experiments.mlp as mlp
    mlp.synthesizer_step, restore = spy, mlp.synthesizer_step
    try:
        setup.step(x, y)
    finally:
        mlp.synthesizer_step = restore
    assert sorted(seen) == [0, 1, 2]
    # recompute by hand, with the weights from before the step: layer k+1's
    # input gradient from its own synthetic gradient (the output layer: the loss)
    context = F.one_hot(y, 4).float()
    h = x
    hs = []
    for k, layer in enumerate(snapshot.layers[:3]):
        h = layer(h.detach())
        hs.append(h.detach())
    for k in range(3):
        h_in = hs[k].clone().requires_grad_(True)
        out = snapshot.layers[k + 1](h_in)
        if k + 1 < 3:
            ctx = context if setup.modes[k + 1] == "cdni" else None
            sg = synth_snapshot[k + 1](out.detach(), ctx) / out.shape[0]
            out.backward(sg.detach())
        else:
            F.cross_entropy(out, y).backward()
        target, received = seen[k]
        assert torch.allclose(target, h_in.grad, atol=1e-6)
        assert torch.equal(target, received)
        assert target.abs().sum() > 0


def test_no_gradient_crosses_a_decoupled_boundary():
    x, y = _batch()
    setup = _setup(["dni", "dni"])
    # zero-initialised synthesizers: the hidden layers get an all-zero signal
    setup2 = DecoupledMLP(setup.model, ["dni", "dni"], n_classes=4)
    before = [p.clone() for p in setup2.model.layers[0].parameters()]
    setup2.optimizers[0].param_groups[0]["lr"] = 1.0
    setup2.step(x, y)
    grads = [p.grad for p in setup2.model.layers[0].parameters()]
    assert all(g is None or g.abs().sum() == 0 for g in grads)
    assert all(torch.equal(a, b) for a, b in zip(before, setup2.model.layers[0].parameters()))


def test_no_backprop_trains_only_the_output_layer():
    x, y = _batch()
    setup = _setup(["none"] * 3)
    before = copy.deepcopy(setup.model.state_dict())
    setup.step(x, y)
    after = setup.model.state_dict()
    for name, value in after.items():
        if name.startswith("layers.3."):
            assert not torch.equal(value, before[name])
        elif "running" not in name and "num_batches" not in name:
            assert torch.equal(value, before[name]), name


def test_frozen_layer_above_a_synthesizer_sends_no_target():
    x, y = _batch()
    setup = _setup(["dni", "none", "backprop"])
    metrics = setup.step(x, y, diagnose=True)
    assert "synth_loss/L1" not in metrics and "cos/L1" in metrics


def test_true_gradients_touch_no_grad_and_no_running_statistics():
    x, y = _batch()
    setup = _setup(["dni", "dni"])
    state = copy.deepcopy(setup.model.state_dict())
    grads = true_gradients(setup.model, x, y)
    assert [g.shape for g in grads] == [(16, 8), (16, 8)]
    assert all(p.grad is None for p in setup.model.parameters())
    assert all(torch.equal(v, state[k]) for k, v in setup.model.state_dict().items())
    # and they are the real backprop gradients
    hs, h = [], x
    for layer in setup.model.layers:
        h = layer(h)
        h.retain_grad()
        hs.append(h)
    F.cross_entropy(h, y).backward()
    assert torch.allclose(grads[0], hs[0].grad, atol=1e-7)
    assert torch.allclose(grads[1], hs[1].grad, atol=1e-7)


def test_step_reports_cosines_and_synthesizer_losses():
    x, y = _batch()
    setup = _setup(["cdni", "backprop", "dni"])
    metrics = setup.step(x, y, diagnose=True)
    assert set(metrics) == {"train_loss", "synth_loss/L1", "synth_loss/L3", "cos/L1", "cos/L3"}
    assert all(-1 <= metrics[k] <= 1 for k in ("cos/L1", "cos/L3"))


def test_layer_step_validates_and_runs_one_layer():
    x, y = _batch()
    model = MLP(6, 4, depth=1, width=8)
    with pytest.raises(ValueError, match="not both"):
        layer_step(model.layers[1], None, x, interface=object(), y=y)
    out = layer_step(model.layers[0], None, x)       # no signal: forward only
    assert out.grad_in is None and out.h_out.shape == (16, 8)
    top = layer_step(model.layers[1], torch.optim.SGD(model.layers[1].parameters(), lr=0.1),
                     out.h_out, y=y)
    assert top.h_out is None and top.grad_in.shape == (16, 8) and top.loss > 0


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="depth"):
        MLP(6, 4, depth=0)
    with pytest.raises(ValueError, match="one mode per boundary"):
        DecoupledMLP(MLP(6, 4, depth=2, width=8), ["dni"], n_classes=4)
    with pytest.raises(ValueError, match="variants"):
        next(compare_mlp(variants="sometimes"))
    with pytest.raises(ValueError, match="no setting 'contxt'"):
        next(compare_mlp(contxt="cdni"))


def test_small_cdni_run_on_mnist1d_beats_no_backprop():
    rows, result = run_to_end(compare_mlp(depth=2, width=64, epochs=3, variants="cdni",
                                          log_every=50, seed=0))
    assert isinstance(result, Result)
    assert {"acc/backprop", "acc/cdni", "acc/no_backprop", "cos/cdni/L1"} <= set(rows[-1])
    acc = result.final("acc")
    assert acc["cdni"] > acc["no_backprop"] + 5   # seeds 0-3: +10.5..+14.7


def test_nb03_exercise_checkers_accept_right_and_reject_wrong_answers():
    from dni_lite.exercises import nb03

    def output_gradient(w, b, h, y):
        return (torch.softmax(h @ w.T + b, dim=1) - F.one_hot(y, w.shape[0]).float()) @ w

    def bootstrap_target(layer, synthesizer, h):
        h = h.clone().requires_grad_(True)
        out = layer(h)
        out.backward(synthesizer(out.detach()).detach() / len(h))
        return h.grad

    assert nb03.check_output_gradient(None) == nb03.NOT_YET
    assert nb03.check_output_gradient(output_gradient).startswith("Correct")
    assert nb03.check_output_gradient(lambda w, b, h, y: output_gradient(w, b, h, y) / 16
                                      ).startswith("Not yet")
    assert nb03.check_bootstrap_target(bootstrap_target).startswith("Correct")
    assert nb03.check_bootstrap_target(lambda layer, s, h: torch.zeros_like(h)).startswith("Not yet")
    modes = ["dni", "backprop", "cdni", "backprop"]
    assert nb03.check_true_targets(modes, [3]).startswith("Correct")
    assert nb03.check_true_targets(modes, [1, 3]).startswith("Not yet")
    assert nb03.check_true_targets(["dni"] * 4, [4]).startswith("Correct")


def test_step_times_reports_every_setup():
    from dni_lite.experiments.mlp import step_times
    ms = step_times(depth=2, width=32, batch_size=16, repeats=3, warmup=1)
    assert set(ms) == {"backprop", "dni_linear", "dni_mlp", "cdni_linear", "no_backprop"}
    assert all(t > 0 for t in ms.values())
