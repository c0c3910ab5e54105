"""Each ablation settings field switches exactly one piece of the mechanism off."""
import dataclasses

import pytest
import torch

from dni_lite.experiments.deep_linear import compare_methods
from dni_lite.experiments.linear import compare_linear
from dni_lite.experiments.mlp import MLP, DecoupledMLP, compare_mlp
from dni_lite.experiments.recurrent import RecurrentCore, TruncatedBPTT
from dni_lite.interface import label_context, regression_target
from dni_lite.parallel import ParallelConfig, train_in_process
from dni_lite.runner import rows as metric_rows, run_to_end
from dni_lite.synthesizer import Synthesizer
from dni_lite.data.tasks import copy_batch


def _batch(seed=0, n=32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 4, (n,), generator=g)


def _setup(ablation, modes="cdni"):
    torch.manual_seed(0)
    return DecoupledMLP(MLP(6, 4, depth=3, width=16), modes, n_classes=4, ablation=ablation)


def _hidden_params(setup):
    return [p.detach().clone() for layer in setup.model.layers[:-1] for p in layer.parameters()]


def test_zero_synthetic_gradient_leaves_the_hidden_layers_where_they_started():
    setup = _setup("zero_synthetic_gradient")
    before = _hidden_params(setup)
    synth_before = [p.detach().clone() for p in setup.interfaces[2].parameters()]
    for i in range(5):
        setup.step(*_batch(i))
    assert all(torch.equal(a, b) for a, b in zip(before, _hidden_params(setup)))
    # the synthesizers still learn: the top one regresses on the true gradient
    assert any(not torch.equal(a, b) for a, b in zip(synth_before, setup.interfaces[2].parameters()))
    normal = _setup("none")
    for i in range(5):
        normal.step(*_batch(i))
    assert any(not torch.equal(a, b) for a, b in zip(before, _hidden_params(normal)))


def test_shuffled_context_permutes_the_labels_across_the_batch():
    y = torch.arange(8) % 4
    shuffled = label_context(y, 4, torch.Generator().manual_seed(0))
    plain = label_context(y, 4)
    assert not torch.equal(shuffled, plain)
    assert torch.equal(shuffled.sum(0), plain.sum(0))            # the same labels, other rows
    setup = _setup("shuffled_context")
    assert not torch.equal(setup.context(y), plain)


def test_no_bootstrap_keeps_the_lower_synthesizers_at_zero_and_trains_the_top_one():
    setup = _setup("no_bootstrap")
    for i in range(5):
        setup.step(*_batch(i))
    for k in (0, 1):      # their targets were bootstrapped: they regressed on zero from zero
        assert all(torch.count_nonzero(p) == 0 for p in setup.interfaces[k].synthesizer.net[-1].parameters())
    assert any(torch.count_nonzero(p) > 0 for p in setup.interfaces[2].synthesizer.net[-1].parameters())
    assert torch.equal(regression_target(torch.ones(2), False, "no_bootstrap"), torch.ones(2))


def test_no_bootstrap_in_a_recurrent_core_regresses_on_the_chunks_own_gradient():
    batch = copy_batch(2, batch_size=8, bits=2, generator=torch.Generator().manual_seed(1))
    targets = []
    for bootstrap, inject in ((False, True), (True, False)):
        torch.manual_seed(0)
        core = RecurrentCore(3, 8, 2)
        synth = Synthesizer(core.state_dim, zero_init=False)
        trainer = TruncatedBPTT(core, 2, synth, bootstrap=bootstrap)
        trainer.reset(8)
        trainer.train_chunk(batch.inputs[:2], batch.targets[:2], batch.mask[:2], inject=inject)
        targets.append(trainer.last_target)
    assert torch.allclose(targets[0], targets[1], atol=1e-6)


def test_linear_ablations_turn_cdni_into_its_controls():
    rows, _ = run_to_end(compare_linear(steps=300, variants="cdni", ablation="zero_synthetic_gradient"))
    assert all(r["cos/cdni"] == 0.0 for r in rows)
    rows, _ = run_to_end(compare_linear(steps=300, variants="cdni", ablation="shuffled_context"))
    assert rows[-1]["cos/cdni"] < 0.5     # the label no longer predicts the gradient


def test_ablation_fields_reach_every_experiment_and_are_validated():
    with pytest.raises(ValueError, match="ablation"):
        next(compare_mlp(ablation="dropout"))
    with pytest.raises(ValueError, match="ablation"):
        next(compare_linear(ablation="no_bootstrap"))     # one interface: nothing to bootstrap
    row = next(metric_rows(compare_methods(method="cdni", steps=20, log_every=20, ablation="no_bootstrap")))
    assert "acc/cdni" in row
    config = ParallelConfig(width=16, depth=3, batch_size=16, steps=5, ablation="zero_synthetic_gradient")
    result = train_in_process(config)
    fresh = train_in_process(dataclasses.replace(config, steps=1))      # one step: still the init
    lower = result["state"][0]["module"]
    assert all(torch.equal(lower[k], fresh["state"][0]["module"][k]) for k in lower
               if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
