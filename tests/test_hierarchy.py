"""The two-timescale system of notebook 08: the task, the three trainers, their validation."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dni_lite.data.tasks import count_chance, count_stream, window_counts
from dni_lite.experiments.hierarchy import (DecoupledTrainer, HierarchySettings, LockedTrainer,
                                            hierarchy_experiment, make_trainer, two_worker_costs,
                                            windows_to_target)
from dni_lite.runner import run_to_end


def window(K=1, m=4, B=8, seed=0):
    bits = count_stream(K, m, B, torch.Generator().manual_seed(seed))
    return bits, window_counts(bits)


def fast_weights(trainer):
    return [p.detach().clone() for p in trainer.model.fast_parameters()]


def test_the_task_counts_ones_and_knows_its_chance_level():
    bits = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]])     # one window of 3 bits, 2 streams
    assert window_counts(bits).tolist() == [[2, 0]]
    assert count_chance(4) == 6 / 16 and count_chance(1) == 0.5
    with pytest.raises(ValueError, match="only 0 and 1"):
        window_counts(bits * 2)
    with pytest.raises(ValueError, match="windows, m, batch"):
        window_counts(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="m must be an integer"):
        count_stream(2, 0)


@pytest.mark.parametrize("field, value", [("m", 0), ("K", 0), ("K", 65), ("kind", "rnn"),
                                          ("lower_lr", 0.0), ("sg_scale", -1.0), ("target", 101.0), ("ablation", "shuffled_context"),
                                          ("methods", ("locked", "bptt")), ("methods", ())])
def test_settings_refuse_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        HierarchySettings(**{field: value})


def test_a_zero_initialised_synthesizer_moves_nothing_at_the_first_window():
    trainer = make_trainer("dni", HierarchySettings())
    before = fast_weights(trainer)
    slow_before = [p.detach().clone() for p in trainer.model.slow_parameters()]
    trainer.step(*window(K=3))
    assert trainer.fast_updates == 3
    assert all(torch.equal(a, b) for a, b in zip(before, fast_weights(trainer)))
    assert not all(torch.equal(a, p) for a, p in zip(slow_before, trainer.model.slow_parameters()))


class Oracle(nn.Module):
    """A 'synthesizer' that returns the exact per-example dL/du of a one-tick window."""

    def __init__(self, model, labels):
        super().__init__()
        self.model, self.labels = model, labels
        self.dim, self.context_dim = model.message_dim, 0
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, u, context=None):
        u = u.detach().requires_grad_()
        logits, _ = self.model.slow_tick(u, self.model.initial_states(u.shape[0])[1])
        (grad,) = torch.autograd.grad(F.cross_entropy(logits, self.labels), u)
        return grad * u.shape[0] + 0 * self.dummy


def test_with_an_exact_oracle_the_decoupled_fast_update_equals_the_locked_one():
    s = HierarchySettings(K=1)
    bits, labels = window(K=1)
    locked = make_trainer("locked", s)
    dni = make_trainer("dni", s)
    dni.synthesizer = Oracle(dni.model, labels[0])
    locked.step(bits, labels)
    dni.step(bits, labels)
    for a, b in zip(locked.model.fast_parameters(), dni.model.fast_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_update_rate_control_applies_the_summed_synthetic_gradients_once_per_window():
    s = HierarchySettings(ablation="one_fast_update_per_window")
    trainer = make_trainer("dni", s)
    assert not trainer.every_tick
    with torch.no_grad():                          # a synthesizer that already predicts something
        for p in trainer.synthesizer.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    reference = make_trainer("locked", s).model    # the same initial weights
    predict = [p.detach().clone() for p in trainer.synthesizer.parameters()]
    bits, labels = window(K=3)
    trainer.step(bits, labels)
    assert trainer.fast_updates == 1

    from dni_lite.interface import label_context, synthetic_gradient
    synth = trainer.synthesizer.__class__(s.message_dim, context_dim=s.m + 1, kind=s.kind)
    with torch.no_grad():
        for p, q in zip(synth.parameters(), predict):
            p.copy_(q)
    opt = torch.optim.Adam(reference.fast_parameters(), lr=s.lower_lr)
    fast = reference.initial_states(bits.shape[2])[0]
    for tick_bits, tick_labels in zip(bits, labels):    # the sum over the window's ticks, one step
        u, fast = reference.fast_tick(tick_bits, fast)
        (u * synthetic_gradient(synth, u, label_context(tick_labels, s.m + 1))).sum().backward()
        fast = (fast[0].detach(), fast[1].detach())
    opt.step()
    for a, b in zip(reference.fast_parameters(), trainer.model.fast_parameters()):
        torch.testing.assert_close(a, b)
    every_tick = make_trainer("dni", HierarchySettings())
    every_tick.step(*window(K=3))
    assert every_tick.fast_updates == 3


def test_without_a_signal_the_fast_network_never_changes():
    trainer = make_trainer("no_signal", HierarchySettings())
    before = fast_weights(trainer)
    for seed in range(3):
        trainer.step(*window(K=4, seed=seed))
    assert trainer.fast_updates == 0
    assert all(torch.equal(a, b) for a, b in zip(before, fast_weights(trainer)))


def test_the_experiment_logs_every_method_and_is_reproducible():
    run = lambda: run_to_end(hierarchy_experiment(windows=6, log_every=3, K=2))
    rows, result = run()
    again, _ = run()
    assert [r["step"] for r in rows] == [3, 6] and rows[-1]["ticks"] == 12
    for m in ("locked", "dni", "no_signal"):
        assert rows[-1][f"acc/{m}"] == again[-1][f"acc/{m}"]
    assert rows[-1]["fast_updates/locked"] == 6 and rows[-1]["fast_updates/dni"] == 12
    assert rows[-1]["fast_updates/no_signal"] == 0 and rows[-1]["chance"] == 100 * count_chance(4)
    costs = two_worker_costs(result.trainers["dni"])
    assert costs.modules == 2 and all(c > 0 for c in costs.forward + costs.backward)
    with pytest.raises(ValueError, match="DecoupledTrainer"):
        two_worker_costs(result.trainers["locked"])
    assert windows_to_target(rows, "locked", 0.0) == 3 and windows_to_target(rows, "locked", 100.0) in (None, 3, 6)
    assert isinstance(result.trainers["locked"], LockedTrainer)
    assert isinstance(result.trainers["dni"], DecoupledTrainer)


def test_the_two_system_timeline_draws_each_schedule_in_its_own_chart():
    from dni_lite.display.timeline_plots import two_system_figure
    from dni_lite.experiments.timeline import Costs
    fig = two_system_figure(Costs([1.0, 0.5], [2.0, 1.0], [0.5, 0.0]), windows=3)
    axes = {trace.yaxis for trace in fig.data if len(trace.x)}
    assert axes == {"y", "y2"}
    synth_axes = {trace.yaxis for trace in fig.data if trace.name == "synthesizer" and len(trace.x)}
    assert synth_axes == {"y2"}                      # only the decoupled system has a synthesizer
    assert sum(trace.showlegend for trace in fig.data) == 4
    with pytest.raises(ValueError, match="two modules"):
        two_system_figure(Costs([1.0], [2.0]))
