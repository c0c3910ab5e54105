import math

import pytest
import torch

from dni_lite import Synthesizer
from dni_lite.experiments.recurrent import (CopySettings, RecurrentCore, TruncatedBPTT, copy_experiment,
                                            make_trainer,
                                sample, sequence_loss, stream_experiment)
from dni_lite.data.tasks import copy_batch, load_corpus, planted_entropy
from dni_lite.runner import rows as metric_rows, run_to_end


def _core(seed=0, hidden=5, in_dim=4, out_dim=3):
    torch.manual_seed(seed)
    return RecurrentCore(in_dim, hidden, out_dim)


def _plain_truncated_bptt(core, batch, T, lr):
    """Truncated BPTT written out by hand: detach the state between chunks."""
    opt = torch.optim.Adam(core.parameters(), lr=lr)
    state = core.initial_state(batch.inputs.shape[1])
    for start in range(0, len(batch), T):
        sl = slice(start, start + T)
        out, _, state = core(batch.inputs[sl], state.detach())
        loss = sequence_loss(out, batch.targets[sl], batch.mask[sl], "bits")[0]
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_without_synthesizer_step_equals_plain_truncated_bptt():
    batch = copy_batch(3, batch_size=4, bits=3, generator=torch.Generator().manual_seed(1))
    reference = _core(in_dim=4)
    _plain_truncated_bptt(reference, batch, T=2, lr=1e-2)
    for synth in (None, "zero_scale"):
        core = _core(in_dim=4)
        if synth is None:
            trainer = TruncatedBPTT(core, 2, None, lr=1e-2)
        else:   # a synthesizer whose injected gradient is scaled to zero changes nothing either
            s = Synthesizer(core.state_dim, zero_init=False)
            trainer = TruncatedBPTT(core, 2, s, sg_scale=0.0, lr=1e-2)
        trainer.train_sequence(batch)
        for a, b in zip(core.parameters(), reference.parameters()):
            assert torch.allclose(a, b, atol=1e-6)


def test_synthetic_gradient_changes_the_update():
    batch = copy_batch(3, batch_size=4, bits=3, generator=torch.Generator().manual_seed(1))
    reference = _core(in_dim=4)
    _plain_truncated_bptt(reference, batch, T=2, lr=1e-2)
    core = _core(in_dim=4)
    torch.manual_seed(5)
    trainer = TruncatedBPTT(core, 2, Synthesizer(core.state_dim, zero_init=False), lr=1e-2)
    trainer.train_sequence(batch)
    assert any(not torch.allclose(a, b, atol=1e-6)
               for a, b in zip(core.parameters(), reference.parameters()))


def test_bootstrapped_target_equals_finite_difference_gradient():
    """Target at the chunk's start = B x d/ds0 [chunk loss + scaled SG . s_end], by hand."""
    torch.set_default_dtype(torch.float64)
    try:
        core = _core(hidden=2, in_dim=2, out_dim=2)
        torch.manual_seed(3)
        synth = Synthesizer(core.state_dim, zero_init=False)
        trainer = TruncatedBPTT(core, 2, synth, sg_scale=0.1, lr=1e-9, synth_lr=1e-9)
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, 2, generator=g)
        y = torch.randint(0, 2, (2, 3, 2), generator=g).double()
        mask = torch.ones(2, 3)
        s0 = 0.5 * torch.randn(3, 4, generator=g)
        with torch.no_grad():
            params = [p.clone() for p in core.parameters()]
            sg = 0.1 * synth(core(x, s0)[2]) / 3      # injected gradient, held fixed

        def objective(s):
            with torch.no_grad():
                out, _, s_end = core(x, s)
                return float(sequence_loss(out, y, mask)[0] + (s_end * sg).sum())

        expected = torch.zeros_like(s0)
        eps = 1e-6
        for i in range(3):
            for j in range(4):
                plus, minus = s0.clone(), s0.clone()
                plus[i, j] += eps
                minus[i, j] -= eps
                expected[i, j] = 3 * (objective(plus) - objective(minus)) / (2 * eps)
        trainer.state = s0.clone()
        trainer.train_chunk(x, y, mask)
        assert torch.allclose(trainer.last_target, expected, atol=1e-6)
        # without injection (the sequence ends here) the target is the chunk's gradient alone
        for p, q in zip(core.parameters(), params):
            p.data.copy_(q)
        trainer.state = s0.clone()
        trainer.train_chunk(x, y, mask, inject=False)
        with torch.no_grad():
            sg.zero_()
        expected0 = torch.zeros_like(s0)
        for i in range(3):
            for j in range(4):
                plus, minus = s0.clone(), s0.clone()
                plus[i, j] += eps
                minus[i, j] -= eps
                expected0[i, j] = 3 * (objective(plus) - objective(minus)) / (2 * eps)
        assert torch.allclose(trainer.last_target, expected0, atol=1e-6)
        assert not torch.allclose(expected, expected0, atol=1e-4)
    finally:
        torch.set_default_dtype(torch.float32)


def test_synthesizer_learns_the_bootstrapped_target():
    """With the core frozen, M(s_0) explains a good part of its (noisy) target's variance."""
    torch.manual_seed(0)
    core = RecurrentCore(4, 8, 3)
    trainer = TruncatedBPTT(core, 2, Synthesizer(core.state_dim), lr=1e-9, synth_lr=1e-2)
    g = torch.Generator().manual_seed(0)
    error = energy = 0.0
    for i in range(400):
        batch = copy_batch(2, batch_size=16, bits=3, generator=g)
        trainer.reset(16)
        for s in range(0, 5, 2):
            row = trainer.train_chunk(batch.inputs[s:s + 2], batch.targets[s:s + 2],
                                      batch.mask[s:s + 2], inject=s + 2 < 5)
            if i >= 300:   # the loss of predictions made before each update: a fair score
                error += row["synth_loss"]
                energy += float(trainer.last_target.pow(2).mean())
    assert error / energy < 0.7       # measured 0.47-0.50 over seeds 0-2; predicting 0 gives 1.0


def test_auxiliary_task_runs_and_reports_its_loss():
    core = RecurrentCore(4, 6, 3, aux=True)
    trainer = TruncatedBPTT(core, 2, Synthesizer(core.state_dim, zero_init=False), aux_weight=1.0)
    batch = copy_batch(2, batch_size=4, bits=3)
    row = trainer.train_chunk(batch.inputs[:2], batch.targets[:2], batch.mask[:2])
    assert "aux_loss" in row and math.isfinite(row["aux_loss"])
    with pytest.raises(ValueError, match="aux_weight"):
        TruncatedBPTT(RecurrentCore(4, 6, 3), 2, Synthesizer(12), aux_weight=1.0)


def test_the_auxiliary_loss_shapes_the_core_but_stays_out_of_the_synthesizers_target():
    batch = copy_batch(2, batch_size=4, bits=3, generator=torch.Generator().manual_seed(0))
    trainers = []
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        core = RecurrentCore(4, 6, 3, aux=True)
        trainer = TruncatedBPTT(core, 2, Synthesizer(core.state_dim, zero_init=False), aux_weight=weight)
        trainer.train_chunk(batch.inputs[:2], batch.targets[:2], batch.mask[:2])
        trainers.append(trainer)
    plain, aux = trainers
    assert torch.equal(plain.last_target, aux.last_target)
    assert not torch.equal(plain.core.cell.weight_hh, aux.core.cell.weight_hh)


def test_bad_arguments_are_refused():
    core = RecurrentCore(4, 6, 3)
    with pytest.raises(ValueError, match="T"):
        TruncatedBPTT(core, 0)
    with pytest.raises(ValueError, match="synthesizer"):
        TruncatedBPTT(core, 2, Synthesizer(7))
    with pytest.raises(ValueError, match="sg_scale"):
        TruncatedBPTT(core, 2, Synthesizer(12), sg_scale=-1.0)
    with pytest.raises(ValueError, match="method"):
        make_trainer(4, 3, 2, "rtrl", CopySettings())
    with pytest.raises(ValueError, match="task"):
        next(copy_experiment(task="sort"))
    with pytest.raises(ValueError, match="methods"):
        next(stream_experiment(methods=("bptt", "magic")))


def test_copy_experiment_yields_levels_and_returns_the_longest_solved():
    history, result = run_to_end(copy_experiment(T=2, steps=40, log_every=20, hidden_dim=8))
    assert [row["step"] for row in history] == [20, 40]
    assert set(result.final("solved")) == {"bptt", "dni", "dni_noise"}
    assert {"train_bits/dni", "seconds/dni"} <= set(history[-1])
    assert all(row[f"solved/{m}"] >= 0 for row in history for m in ("bptt", "dni"))


def test_stream_experiment_on_planted_task_reports_the_floor():
    history, result = run_to_end(stream_experiment(steps=10, log_every=5, hidden_dim=8))
    assert len(history) == 2
    floor = planted_entropy(4, 0.1)
    assert history[-1]["floor"] == pytest.approx(floor)
    for m in ("bptt", "dni", "bptt_long"):
        assert floor < result.final("val_bits")[m] < 2.5


def test_stream_experiment_on_text_and_sampling():
    history, result = run_to_end(stream_experiment(task="shakespeare", steps=4, log_every=2,
                                                   hidden_dim=8, methods=("dni",),
                                                   max_chars=20_000))
    assert math.isfinite(result.final("val_bits")["dni"])
    text = sample(result.trainers["dni"].core, result.data, prime="KING", length=30)
    assert len(text) == 30 and set(text) <= set(result.data.chars)
    with pytest.raises(ValueError, match="alphabet"):
        sample(result.trainers["dni"].core, load_corpus("shakespeare", max_chars=200), "~~~", 5)


def test_exercise_checkers_accept_the_answers_and_reject_wrong_ones():
    from dni_lite.exercises import nb05, nb06
    from dni_lite.data.tasks import planted_entropy
    assert nb05.check_pairs_within_chunk(None).startswith("Not attempted")
    assert nb05.check_pairs_within_chunk(nb05.pairs_within_chunk).startswith("Correct")
    assert nb05.check_pairs_within_chunk(lambda n, T: 0).startswith("Not yet")
    assert nb05.pairs_within_chunk(2, 4) == 1 and nb05.pairs_within_chunk(3, 4) == 0
    assert nb05.check_fixed_point(1 / 0.9).startswith("Correct")
    assert nb05.check_fixed_point(1.0).startswith("Not yet")
    assert nb05.check_reach(3).startswith("Correct") and nb05.check_reach(2).startswith("Not yet")
    assert nb06.check_floor(planted_entropy(8, 0.2)).startswith("Correct")
    assert nb06.check_floor(3.0).startswith("Not yet")
    assert nb06.check_min_window(lambda k: k).startswith("Correct")
    assert nb06.check_min_window(lambda k: k - 1).startswith("Not yet")
    assert nb06.check_unigram(0.0).startswith("Not yet")


def test_a_planted_dependency_longer_than_the_long_window_is_refused_in_words():
    with pytest.raises(ValueError, match="dependency k must be smaller than the long window"):
        next(stream_experiment(k=6, long_T=6))
    next(metric_rows(stream_experiment(k=5, long_T=6, steps=2, log_every=1, hidden_dim=4)))   # still allowed


def test_noise_at_the_boundary_has_the_synthetic_gradients_size_and_none_of_its_information():
    batch = copy_batch(2, batch_size=4, bits=3, generator=torch.Generator().manual_seed(0))
    cores = {}
    for name, synth_init, noise in (("bptt", None, None), ("zero", True, 1), ("dni", False, None),
                                    ("noise", False, 1)):
        torch.manual_seed(0)
        core = RecurrentCore(4, 6, 3)
        synth = None if synth_init is None else Synthesizer(core.state_dim, zero_init=synth_init)
        trainer = TruncatedBPTT(core, 2, synth, sg_scale=1.0,
                                noise=None if noise is None else torch.Generator().manual_seed(noise))
        trainer.train_chunk(batch.inputs[:2], batch.targets[:2], batch.mask[:2])
        cores[name] = core.cell.weight_hh.detach()
    assert torch.equal(cores["zero"], cores["bptt"])       # a zero prediction: noise of size zero
    assert not torch.allclose(cores["noise"], cores["dni"]) and not torch.allclose(cores["noise"], cores["bptt"])
    with pytest.raises(ValueError, match="noise"):
        TruncatedBPTT(RecurrentCore(4, 6, 3), 2, Synthesizer(12), noise=1)
