"""Every notebook claim's check passes on the method and fails on its control."""
import pytest

from dni_lite.claims import ClaimFailed
from dni_lite.claims import nb01
from dni_lite.experiments.linear import compare_linear
from dni_lite.runner import run_to_end

pytestmark = pytest.mark.claims


@pytest.fixture(scope="module")
def linear_rows():
    return run_to_end(compare_linear())[0]


def test_nb01_checks_pass_on_the_method(linear_rows):
    for check in (nb01.cdni_gradient_is_exact, nb01.cdni_trains_like_backprop,
                  nb01.dni_stalls_like_the_control):
        assert check(linear_rows).startswith("PASS")
    assert nb01.lambda_one_is_backprop(0.0, 0.05).startswith("PASS")


def test_nb01_checks_fail_on_their_controls(linear_rows):
    shuffled = run_to_end(compare_linear(ablation="shuffled_context", controls=()))[0]
    with pytest.raises(ClaimFailed, match="cosine"):
        nb01.cdni_gradient_is_exact(shuffled, control="dni")
    zeroed = run_to_end(compare_linear(ablation="zero_synthetic_gradient", controls=()))[0]
    with pytest.raises(ClaimFailed, match="within 5%"):
        nb01.cdni_trains_like_backprop(zeroed, control="dni")
    with pytest.raises(ClaimFailed):           # cDNI does not stall: the label is what matters
        nb01.dni_stalls_like_the_control(linear_rows, method="cdni")
    with pytest.raises(ClaimFailed, match="not mixed in"):
        nb01.lambda_one_is_backprop(0.0, 0.0)   # a BP(lambda) that ignored the synthetic part


def test_nb01_calibration_reuses_a_given_run_and_refuses_bad_process_counts(linear_rows):
    # the default run (seed 0) is given: nothing is trained again, and its row is the checks' numbers
    (row,) = nb01.calibrate(seeds=(0,), runs={0: linear_rows}, processes=2)
    assert row["seed"] == 0 and row["loss/cdni"] == linear_rows[-1]["test_loss/cdni"]
    assert row["cos/cdni"] >= 0.99 and row["cos/cdni_shuffled"] < 0.1
    with pytest.raises(ValueError, match="processes"):
        nb01.calibrate(seeds=(0,), runs={0: linear_rows}, processes=0)


# -- notebook 03 --------------------------------------------------------------------------
from dni_lite.claims import nb03                                    # noqa: E402
from dni_lite.experiments.mlp import compare_mlp, sweep_depth      # noqa: E402


@pytest.fixture(scope="module")
def mlp_measures():
    rows, _ = run_to_end(compare_mlp())
    return nb03.measures(rows)


def test_nb03_checks_pass_on_the_method(mlp_measures):
    for check in (nb03.cdni_close_to_backprop, nb03.dni_lower_layers_learn,
                  nb03.cdni_cosine_grows_toward_the_top, nb03.cdni_at_least_dni):
        assert check(mlp_measures).startswith("PASS")


def test_nb03_checks_fail_on_their_controls(mlp_measures):
    m = mlp_measures
    with pytest.raises(ClaimFailed):       # the label shuffled: far from backprop, no ordering
        nb03.cdni_close_to_backprop(m, method="cdni_shuffled")
    with pytest.raises(ClaimFailed):
        nb03.cdni_cosine_grows_toward_the_top(m, method="cdni_shuffled")
    with pytest.raises(ClaimFailed):
        nb03.cdni_at_least_dni(m, method="cdni_shuffled")
    with pytest.raises(ClaimFailed, match="does not beat|cosine"):   # no bootstrapped targets
        nb03.dni_lower_layers_learn(m, method="dni_no_bootstrap")


def test_nb03_sweep_check_passes_and_fails_on_its_control():
    rows, _ = run_to_end(sweep_depth(depths=(2,), seeds=(0,)))
    assert nb03.sweep_beats_no_backprop(rows).startswith("PASS")
    with pytest.raises(ClaimFailed):
        nb03.sweep_beats_no_backprop(rows, methods=("no_backprop",))


# -- notebook 07 --------------------------------------------------------------------------
import dataclasses                                                  # noqa: E402

from dni_lite.claims import nb07                                    # noqa: E402
from dni_lite.parallel import ParallelConfig, train_in_process, train_parallel   # noqa: E402


def test_nb07_exact_match_check_passes_and_fails_on_another_schedule():
    config = ParallelConfig(width=32, depth=3, batch_size=16, steps=20, seed=3)
    pipelined, reference = train_parallel(config), train_in_process(config)
    other = train_in_process(dataclasses.replace(config, target_delay=2))
    assert nb07.pipeline_matches_reference(pipelined, reference, other).startswith("PASS")
    with pytest.raises(ClaimFailed):
        nb07.pipeline_matches_reference(pipelined, other, reference)


def test_nb07_learning_check_passes_and_fails_on_the_zeroed_control():
    config = ParallelConfig(steps=300, batch_size=64, seed=0)
    dni = train_in_process(config)
    zero = train_in_process(dataclasses.replace(config, ablation="zero_synthetic_gradient"))
    assert nb07.pipeline_learns(dni, zero).startswith("PASS")
    with pytest.raises(ClaimFailed):
        nb07.pipeline_learns(zero, zero)


def test_nb07_learning_rate_check_passes_and_fails_with_fast_layers():
    from dni_lite.parallel import methods

    runs = nb07.rate_runs(dataclasses.replace(methods.PRESETS["default"], steps=150).config())
    assert nb07.slow_layers_learn(runs["slow"], runs["fast"]).startswith("PASS")
    with pytest.raises(ClaimFailed):           # the fast run as the method: it does not learn
        nb07.slow_layers_learn(runs["fast"], runs["slow"])
    with pytest.raises(ClaimFailed):           # nor does a "fast" control that learns as well
        nb07.slow_layers_learn(runs["slow"], runs["slow"])


# -- notebook 04 --------------------------------------------------------------------------
from dni_lite.claims import nb04                                    # noqa: E402
from dni_lite.experiments.unlock import complete_unlocking, staleness, stochastic_updates  # noqa: E402


def test_nb04_stochastic_check_passes_and_fails_on_its_control():
    _, result = run_to_end(stochastic_updates())
    acc, trainer = result.final("acc"), result.trainers["stochastic"]
    assert nb04.stochastic_updates_learn(acc, trainer.updates, trainer.steps, p=0.2).startswith("PASS")
    control = result.trainers["stochastic_no_bootstrap"]
    with pytest.raises(ClaimFailed):
        nb04.stochastic_updates_learn(acc, control.updates, control.steps, p=0.2,
                                      method="stochastic_no_bootstrap")
    with pytest.raises(ClaimFailed, match="updated"):    # a layer that never updates
        nb04.stochastic_updates_learn(acc, [0] + trainer.updates[1:], trainer.steps, p=0.2)


def test_nb04_staleness_check_passes_and_fails_on_its_control():
    _, result = run_to_end(staleness())
    acc = result.final("acc")
    assert nb04.stale_targets_cost(acc).startswith("PASS")
    with pytest.raises(ClaimFailed, match="does not learn"):
        nb04.stale_targets_cost(acc, fresh="no_backprop")


def test_nb04_unlocking_check_passes_and_fails_on_its_control():
    rows, result = run_to_end(complete_unlocking())
    acc = result.final("acc")
    ratios = [rows[-1][f"input_err/unlocked/L{k}"] / rows[0][f"input_err/unlocked/L{k}"] for k in (2, 3, 4)]
    assert nb04.unlocked_network_learns(acc, ratios).startswith("PASS")
    with pytest.raises(ClaimFailed):
        nb04.unlocked_network_learns(acc, ratios, method="no_backprop")


# -- notebook 02 --------------------------------------------------------------------------
from dni_lite.claims import nb02                                    # noqa: E402
from dni_lite.experiments.deep_linear import (compare_deep_linear, compare_methods,  # noqa: E402
                                              lower_movement, prediction_ratio, squared_loss)
from dni_lite.experiments.representations import linear_cka, rdm_distance  # noqa: E402


def test_nb02_section1_checks_pass_and_fail_on_the_frozen_control():
    rows, result = run_to_end(compare_deep_linear())
    data = result.data
    moved = {v: lower_movement(result.trainers[v], 5) for v in ("dni", "dni_zero_sg")}
    ratio = prediction_ratio(result.trainers["dni"], data.x_test, data.y_test, squared_loss)
    assert nb02.cdni_converges_like_backprop(rows).startswith("PASS")
    assert nb02.dni_learned_a_zero_predictor(rows, moved["dni"], ratio).startswith("PASS")
    with pytest.raises(ClaimFailed):
        nb02.cdni_converges_like_backprop(rows, method="dni_zero_sg")
    with pytest.raises(ClaimFailed, match="never moved"):   # the synthesizer never moved anything
        nb02.dni_learned_a_zero_predictor(rows, moved["dni_zero_sg"], ratio, method="dni_zero_sg")


def test_nb02_lambda_check_passes_and_fails_when_the_mix_is_not_a_mix():
    lams = (0.0, 0.5, 1.0)
    rows, _ = run_to_end(compare_deep_linear(variants="none", sweep=lams, controls=()))
    assert nb02.lambda_sweep_mixes(rows, lams).startswith("PASS")
    fake = [{**r, "test_loss/lam=0.5": r["test_loss/backprop"]} for r in rows]
    with pytest.raises(ClaimFailed, match="not a mix"):
        nb02.lambda_sweep_mixes(fake, lams)


def test_nb02_representation_and_signal_checks_fail_on_the_no_backprop_control():
    _, result = run_to_end(compare_methods(method="cdni"))
    task, acc = result.data, result.final("acc")
    acts = {n: t.model.activations(task.x_test) for n, t in result.trainers.items()}
    cka = {n: [linear_cka(a, b) for a, b in zip(acts["backprop"], acts[n])] for n in ("cdni", "no_backprop")}
    rdm = {n: [rdm_distance(h, acts[n][-1]) for h in acts[n]] for n in acts}
    assert nb02.cdni_representations_match_backprop(cka, rdm).startswith("PASS")
    assert nb02.cdni_accuracy_matches_backprop(acc).startswith("PASS")
    with pytest.raises(ClaimFailed):
        nb02.cdni_representations_match_backprop(cka, rdm, method="no_backprop")
    with pytest.raises(ClaimFailed):
        nb02.cdni_accuracy_matches_backprop(acc, method="no_backprop")
    named = {"backprop": acc["backprop"], "no backprop": acc["no_backprop"], "cDNI": acc["cdni"]}
    cos = {"cDNI": 0.9, "no backprop": 0.0}
    assert nb02.signals_learn(named, cos, methods=("cDNI", "backprop")).startswith("PASS")
    with pytest.raises(ClaimFailed):
        nb02.signals_learn(named, cos, methods=("no backprop",))
    with pytest.raises(ClaimFailed):
        nb02.dni_with_mlp_synthesizer_learns(named, cos, method="no backprop")


from dni_lite.claims import nb06                                    # noqa: E402
from dni_lite.experiments.recurrent import stream_experiment       # noqa: E402


def test_nb06_bootstrap_check_passes_and_fails_with_the_bootstrap_switched_off():
    methods = ("bptt", "dni", "dni_one_chunk")
    _, result = run_to_end(stream_experiment(nb06.REACH, methods=methods))
    floor = result.last["floor"]
    assert nb06.bootstrap_reaches_further(result.final("val_bits"), floor).startswith("PASS")
    _, control = run_to_end(stream_experiment(nb06.REACH, methods=methods, ablation="no_bootstrap"))
    bits = control.final("val_bits")
    assert bits["dni"] == bits["dni_one_chunk"]         # the ablation is the one-chunk target
    with pytest.raises(ClaimFailed, match="of the gap"):
        nb06.bootstrap_reaches_further(bits, floor)


from dni_lite.claims import nb05                                    # noqa: E402
from dni_lite.experiments.recurrent import copy_experiment         # noqa: E402


def test_nb05_copy_check_fails_with_the_synthetic_gradient_switched_off():
    _, control = run_to_end(copy_experiment(T=3, sg_scale=0.0))
    solved = control.final("solved")
    assert solved["dni"] == solved["bptt"] == solved["dni_noise"]   # nothing injected: all three are BPTT
    with pytest.raises(ClaimFailed, match="not longer than BPTT"):
        nb05.dni_beats_truncation_and_noise({3: solved})
    with pytest.raises(ClaimFailed, match="noise at the"):
        nb05.dni_beats_truncation_and_noise({3: {"bptt": 2, "dni": 3, "dni_noise": 3}})
    assert nb05.dni_beats_truncation_and_noise({3: {"bptt": 2, "dni": 3, "dni_noise": 2}}).startswith("PASS")


from dni_lite.claims import nb08                                    # noqa: E402
from dni_lite.experiments.hierarchy import hierarchy_experiment     # noqa: E402


def test_nb08_interface_check_passes_and_fails_with_the_synthetic_gradient_switched_off():
    methods = ("dni", "no_signal")
    _, result = run_to_end(hierarchy_experiment(methods=methods))
    updates = result.final("fast_updates")
    assert nb08.interface_carries_the_error(result.final("acc"), updates).startswith("PASS")
    _, control = run_to_end(hierarchy_experiment(methods=methods, ablation="zero_synthetic_gradient"))
    acc = control.final("acc")
    assert acc["dni"] == acc["no_signal"]          # nothing injected: the two are the same run
    with pytest.raises(ClaimFailed, match="never updated"):
        nb08.interface_carries_the_error(acc, control.final("fast_updates"))
    with pytest.raises(ClaimFailed, match="test accuracy"):   # even if the count were not checked
        nb08.interface_carries_the_error(acc, updates)


def test_nb08_learns_sooner_check_passes_and_fails_with_one_fast_update_per_window():
    rows, _ = run_to_end(hierarchy_experiment(methods=("locked", "dni")))
    target = nb08.HierarchySettings().target
    assert nb08.interface_learns_sooner(rows, target).startswith("PASS")
    control, _ = run_to_end(hierarchy_experiment(methods=("dni",), ablation="one_fast_update_per_window"))
    locked = {r["step"]: r["acc/locked"] for r in rows}
    mixed = [{**r, "acc/locked": locked[r["step"]]} for r in control]
    assert mixed[-1]["fast_updates/dni"] == mixed[-1]["step"]      # as often as the locked system
    with pytest.raises(ClaimFailed, match="did not reach"):
        nb08.interface_learns_sooner(mixed, target)
    with pytest.raises(ClaimFailed, match="not at most"):            # the check compares, too
        nb08.interface_learns_sooner([{**r, "acc/locked": r["acc/dni"]} for r in rows], target)

