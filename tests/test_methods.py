"""The five-method benchmark's pieces: stage balancing, pipeline backprop's exactness, and
the results file."""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random

import pytest
import torch

from dni_lite.claims import ClaimFailed, nb07
from dni_lite.parallel import ParallelConfig, train_backprop, train_parallel
from dni_lite.parallel import methods
from dni_lite.parallel.balance import balanced_stages, stage_cost
from dni_lite.parallel.ceiling import train_copies
from dni_lite.parallel.pipeline_backprop import sweep_pipeline_backprop, train_pipeline_backprop
from dni_lite.parallel.stage import build_stages, interface_health, load_data

TINY = dict(workers=2, depth=3, width=32, batch_size=16, steps=12, eval_every=4, seed=1,
            batchnorm=False)


@pytest.fixture(scope="module")
def data():
    return load_data(0)


def _brute_force(costs, synth, k):
    best = None
    for cuts in itertools.combinations(range(1, len(costs)), k - 1):
        sizes = [b - a for a, b in zip((0, *cuts), (*cuts, len(costs)))]
        worst = max(stage_cost(costs, synth, sizes))
        if best is None or worst < best - 1e-12:
            best = worst
    return best


def test_balanced_stages_minimise_the_slowest_stage():
    assert balanced_stages([1, 5, 5, 1], 2.0, 2) == (2, 2)
    assert balanced_stages([1, 1, 1, 1, 4], 0.0, 2) == (4, 1)
    # a synthesizer on every stage but the last pushes layers up
    assert balanced_stages([1, 1, 1, 1], 2.0, 2) == (1, 3)
    rng = random.Random(0)
    for _ in range(50):
        n, k = rng.randint(2, 8), rng.randint(1, 4)
        if k > n:
            continue
        costs = [rng.uniform(0.1, 3) for _ in range(n)]
        synth = rng.uniform(0, 2)
        sizes = balanced_stages(costs, synth, k)
        assert sum(sizes) == n and len(sizes) == k and min(sizes) >= 1
        assert max(stage_cost(costs, synth, sizes)) == pytest.approx(_brute_force(costs, synth, k))
    with pytest.raises(ValueError, match="workers"):
        balanced_stages([1.0, 1.0], 0.0, 3)
    with pytest.raises(ValueError, match=r"costs\[1\]"):
        balanced_stages([1.0, -1.0], 0.0, 1)


def test_config_stages_are_validated_and_used():
    c = ParallelConfig(workers=2, depth=3, stages=(1, 3)).validate()
    assert c.stage_layers() == [(0, 1), (1, 4)]
    with pytest.raises(ValueError, match="stages"):
        ParallelConfig(workers=2, depth=3, stages=(2, 3)).validate()
    with pytest.raises(ValueError, match="stages"):
        ParallelConfig(workers=2, depth=3, stages=(4,)).validate()
    with pytest.raises(ValueError, match=r"stages\[0\]"):
        ParallelConfig(workers=2, depth=3, stages=(0, 4)).validate()


def test_pipeline_backprop_equals_one_process_backprop_and_dni_does_not(data):
    # big enough to leave chance level (at TINY every method still scores 10.2%)
    config = ParallelConfig(**dict(TINY, width=64, batch_size=32, steps=60, eval_every=20)).validate()
    reference = train_backprop(config, data, threads=1)
    plan = [("gpipe", 4), ("1f1b", 2)]
    swept = sweep_pipeline_backprop(config, plan, data)      # both in one start-up of the workers
    assert [(r["mode"], r["micro_batches"]) for r in swept] == plan
    # a run in a sweep is the same run as on its own
    assert train_pipeline_backprop(config, "1f1b", 2, data)["losses"] == swept[1]["losses"]
    for pipe, (schedule, m) in zip(swept, plan):
        # exact gradients: the same losses up to float summation order
        assert pipe["losses"] == pytest.approx(reference["losses"], rel=1e-4, abs=1e-5)
        assert pipe["test_accuracy"] == pytest.approx(reference["test_accuracy"], abs=0.21)
        assert [e[2] for e in pipe["evals"]] == pytest.approx([e[2] for e in reference["evals"]],
                                                              abs=0.21)
        assert nb07.baseline_is_exact(pipe, reference, schedule).startswith("PASS")
    # the check can tell methods apart: the DNI pipeline learns differently
    dni = train_parallel(config, data=data)
    assert dni["losses"] != pytest.approx(reference["losses"], rel=1e-4, abs=1e-5)
    with pytest.raises(ClaimFailed, match="departs"):
        nb07.baseline_is_exact(dni, reference, "the DNI pipeline")


def test_the_exactness_check_compares_the_early_losses():
    backprop = {"losses": [2.3 - 0.01 * i for i in range(30)]}
    reordered = {"losses": [x * (1 + 1e-6) for x in backprop["losses"]]}     # last digits only
    assert nb07.baseline_is_exact(reordered, backprop, "GPipe").startswith("PASS")
    nan = list(backprop["losses"])
    nan[7] = float("nan")
    for losses, match in ((nan, "at step 7"), ([x * 1.01 for x in backprop["losses"]], "at step 0"),
                          (backprop["losses"][:20], "needs 25")):
        with pytest.raises(ClaimFailed, match=match):
            nb07.baseline_is_exact({"losses": losses}, backprop, "GPipe")


def test_pipeline_backprop_refuses_bad_micro_batches(data):
    config = ParallelConfig(**TINY).validate()
    with pytest.raises(ValueError, match="micro_batches"):
        train_pipeline_backprop(config, "gpipe", 3, data)
    with pytest.raises(ValueError, match="schedule"):
        train_pipeline_backprop(config, "zero-bubble", 2, data)
    with pytest.raises(ValueError, match="plan"):
        sweep_pipeline_backprop(config, [], data)
    with pytest.raises(ValueError, match="micro_batches"):
        sweep_pipeline_backprop(config, [("gpipe", 2), ("1f1b", 3)], data)


def test_methods_settings_and_presets():
    assert methods.PRESETS["heavy"].config().stage_layers() == [(0, 4), (4, 8)]
    with pytest.raises(ValueError, match="micro_batches"):
        methods.MethodsSettings(batch_size=64, micro_batches=(3,))
    with pytest.raises(ValueError, match="workers"):
        methods.MethodsSettings(depth=1, workers=3)
    assert methods.MethodsSettings(cuda=False).methods() == methods.MEASURED
    if not torch.cuda.is_available():
        assert methods.MethodsSettings().methods() == methods.MEASURED
        with pytest.raises(ValueError, match="cuda"):
            methods.MethodsSettings(cuda=True)
    assert methods.core_warning(2, 2) and methods.core_warning(3, 2) is None
    with pytest.raises(ValueError, match="ceiling"):
        methods.MethodsSettings(ceiling="yes")


def test_the_presets_use_projected_linear_synthesizers_with_targets_one_step_late():
    for preset in methods.PRESETS.values():
        config = preset.config()
        assert (config.synth_kind, config.synth_projection, config.target_delay) == ("linear", 128, 1)
    with pytest.raises(ValueError, match="synth_kind"):
        methods.MethodsSettings(synth_kind="quadratic")
    with pytest.raises(ValueError, match="target_delay"):
        methods.MethodsSettings(target_delay=9)


def test_the_dni_stages_update_with_fused_adam(data):
    # as the baselines do (parallel.stage.adam): a fair race
    config = methods.PRESETS["default"].config()
    for stage in build_stages(config, data):
        optimisers = [stage.opt] + ([stage.synth_opt] if stage.synth_opt is not None else [])
        assert all(opt.defaults["fused"] for opt in optimisers)


def test_the_presets_use_slow_layers_and_fast_synthesizers():
    # why they matter: tests/test_claims.py runs notebook 07's check on both pairs of rates
    default, heavy = methods.PRESETS["default"], methods.PRESETS["heavy"]
    assert (default.config().lr, default.config().synth_lr) == (3e-4, 3e-2)
    assert (heavy.config().lr, heavy.config().synth_lr) == (3e-4, 1e-1)
    with pytest.raises(ValueError, match="synth_lr"):
        methods.MethodsSettings(synth_lr=0.0)


def test_compare_methods_end_to_end_writes_a_results_file(tmp_path):
    settings = methods.MethodsSettings(depth=2, width=16, batch_size=16, steps=12, eval_every=4,
                                       repeats=1, micro_batches=(2,), target_accuracy=15.0)
    out = tmp_path / "bench.json"
    result = methods.run(settings, out, argv=["--preset", "tiny"], log=lambda *_: None)
    loaded = methods.load(out)
    assert set(loaded["methods"]) == set(settings.methods())
    for name, m in loaded["methods"].items():
        assert m["examples_per_s"] > 0 and m["test_accuracy"] > 0, name
        assert m["device"].startswith("cuda" if name in methods.GPU_METHODS else "cpu"), name
    for scheme in methods.SCHEMES:
        assert loaded["methods"][scheme]["predicted_examples_per_s"] > 0
    assert loaded["provenance"]["torch"] == torch.__version__
    assert loaded["provenance"]["command"] == "python -m dni_lite.bench --preset tiny"
    assert loaded["row"]["speedup/backprop_1worker"] == pytest.approx(1.0)
    # the machine's ceiling: two copies of one-worker backprop at once, measured each round
    assert loaded["ceiling"]["copies"] == 2 and len(loaded["ceiling"]["runs"]) == settings.repeats
    assert loaded["ceiling"]["speedup"] == pytest.approx(
        loaded["ceiling"]["examples_per_s"] / loaded["methods"]["backprop_1worker"]["examples_per_s"])
    assert "one-worker backprops trained at once" in methods.format_table(result)
    assert methods.load(out)["settings"]["ceiling"] is True
    assert "perfect 2-worker pipeline" in methods.format_table({**result, "ceiling": None})
    # a method that never reached the target is "never" in the file, not an infinite
    # value in the row a panel draws (the panel would call it a divergence)
    assert all(math.isfinite(v) for v in result["row"].values())
    assert result["methods"]["dni_pipeline"]["seconds_to_target"] > 0
    # the control ran the same pipeline with its synthesizers zeroed: its lower stage never moved
    assert loaded["methods"][methods.CONTROL]["runs"][0]["ablation"] == "zero_synthetic_gradient"
    assert loaded["methods"]["dni_pipeline"]["runs"][0]["ablation"] == "none"
    # the runs keep their per-step losses: notebook 07's exactness check compares them
    gpipe, backprop = (loaded["methods"][name]["runs"][0] for name in ("gpipe", "backprop_1worker"))
    assert len(gpipe["losses"]) == len(backprop["losses"]) == settings.steps
    assert nb07.baseline_is_exact(gpipe, backprop, "GPipe", steps=settings.steps).startswith("PASS")
    table = methods.format_table(result)
    assert "DNI pipeline" in table and "GPipe" in table and "1F1B" in table
    assert "DNI pipeline, SG zeroed" in table and "synthetic gradients: the DNI pipeline scored" in table
    # the health of what the lower stage sends up: the control's is that of the initial weights
    config = dataclasses.replace(settings.config(), stages=tuple(b - a for a, b in loaded["stages"]))
    initial = interface_health(config, [s.state() for s in build_stages(config, load_data(0))],
                               load_data(0))
    assert loaded["methods"][methods.CONTROL]["interfaces"] == initial
    assert len(loaded["methods"]["dni_pipeline"]["interfaces"]) == settings.workers - 1
    assert loaded["methods"]["backprop_1worker"]["interfaces"] is None
    assert "what the lower stage sends up, on the test set at the end:" in table
    # a corrupt or partial file is refused with a clear error
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a results file"):
        methods.load(tmp_path / "bad.json")
    partial = dict(loaded)
    partial.pop("provenance")
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    with pytest.raises(ValueError, match="provenance"):
        methods.load(tmp_path / "partial.json")


def test_time_to_target_words_compare_the_throughput_ratio_with_the_steps_ratio():
    def result(dni_speed, dni_evals):
        def entry(ex, evals):
            return {"examples_per_s": ex, "runs": [{"evals": evals}]}
        return {"settings": {"target_accuracy": 40.0},
                "methods": {"dni_pipeline": entry(dni_speed, dni_evals),
                            "backprop_all_cores": entry(1.0, [(10, 1.0, 45.0)])}}
    slow = methods.time_to_target_words(result(1.5, [(10, 1.0, 20.0), (20, 2.0, 45.0)]))
    assert "2.00x the steps" in slow and "1.50x its throughput" in slow
    assert "does not reach it first (it would need a throughput ratio above" in slow
    assert "so it reaches it first (its throughput ratio is above its steps ratio)" in (
        methods.time_to_target_words(result(3.0, [(10, 1.0, 20.0), (20, 2.0, 45.0)])))
    assert "never reached" in methods.time_to_target_words(result(3.0, [(10, 1.0, 20.0)]))


def test_the_control_words_say_whether_the_synthetic_gradients_beat_zeroing_them():
    def result(dni, zeroed):
        return {"methods": {"dni_pipeline": {"test_accuracy": dni},
                            methods.CONTROL: {"test_accuracy": zeroed}}}
    helped = methods.control_words(result(45.0, 40.0))
    assert "45.0% against 40.0%" in helped and "(+5.0 points)" in helped
    assert "taught the lower stages something" in helped
    # the control's own verdict: equal (within a point) is no evidence the synthetic gradients helped
    for dni in (40.0, 40.9, 39.1):
        words = methods.control_words(result(dni, 40.0))
        assert "no better than leaving the lower stages as initialised (within 1 point)" in words
    assert "did worse than leaving" in methods.control_words(result(21.4, 40.0))


def test_the_interface_words_compare_the_lower_stages_with_their_initial_weights():
    def result(*pairs):
        return {"methods": {"dni_pipeline": {"interfaces": [a for a, _ in pairs]},
                            methods.CONTROL: {"interfaces": [b for _, b in pairs]}}}
    one = methods.interface_words(result(({"norm": 4.08, "dead": 0.879}, {"norm": 0.98, "dead": 0.024})))
    assert one == ("what the lower stage sends up, on the test set at the end: 88% of its units "
                   "dead, mean norm 4.08 (as initialised: 2%, 0.98)")
    two = methods.interface_words(result(({"norm": 2.0, "dead": 0.5}, {"norm": 1.0, "dead": 0.0}),
                                         ({"norm": 3.0, "dead": 0.25}, {"norm": 1.5, "dead": 0.0})))
    assert two.startswith("what the lower stages send up") and "interface 2: 25% of its units dead" in two


def test_the_ceiling_says_how_few_steps_dni_would_need():
    def result(predicted):
        return {"settings": {"workers": 2},
                "methods": {"backprop_1worker": {"examples_per_s": 100.0},
                            "backprop_all_cores": {"examples_per_s": 160.0},
                            "dni_pipeline": {"examples_per_s": 120.0,
                                             "predicted_examples_per_s": predicted}}}
    words = methods.ceiling_words(result(None))
    assert "perfect 2-worker pipeline would run at 1.25x" in words
    assert "at most 1.25x backprop's steps" in words and "fewer" not in words
    words = methods.ceiling_words(result(144.0))
    assert "as simulated (its measured costs) at 0.90x" in words
    assert "at most 0.90x backprop's steps; fewer than exact gradients need" in words
    # a measured ceiling (two copies of one-worker backprop at once) replaces the perfect one
    measured = {**result(None), "ceiling": {"copies": 2, "examples_per_s": 176.0,
                                                  "speedup": 1.76}}
    words = methods.ceiling_words(measured)
    assert words.startswith("ceiling: 2 one-worker backprops trained at once run at 1.76x one "
                            "alone, so no 2-worker scheme can beat 1.10x all-core backprop here "
                            "(the DNI pipeline runs at 68% of that ceiling)")
    assert "at most 1.10x backprop's steps" in words


def test_copies_of_one_worker_backprop_train_exactly_what_it_trains(data):
    """The ceiling's copies are one-worker backprop, run side by side: each one ends where
    train_backprop ends, and their throughput counts every copy over the slowest one's time."""
    config = ParallelConfig(**{**TINY, "eval_every": 0})
    copies = train_copies(config, data)
    alone = train_backprop(config, data, threads=1)
    assert copies["copies"] == 2 and len(copies["per_copy"]) == 2 and copies["threads"] == [1, 1]
    assert copies["test_accuracy"] == alone["test_accuracy"]
    assert copies["examples_per_s"] == pytest.approx(
        2 * config.steps * config.batch_size / copies["elapsed_s"])
    assert copies["examples_per_s"] <= sum(copies["per_copy"]) * (1 + 1e-9)
    with pytest.raises(ValueError, match="config"):
        train_copies({"workers": 2}, data)


def test_stop_ends_the_copies_within_a_second(data, worker_processes):
    import threading
    import time

    from dni_lite.runner import Stopped
    stop, fired = threading.Event(), []

    def fire():
        fired.append(time.monotonic())
        stop.set()
    config = ParallelConfig(**{**TINY, "steps": 100000, "eval_every": 0})
    threading.Timer(3.0, fire).start()
    with pytest.raises(Stopped):
        train_copies(config, data, stop=stop)
    assert time.monotonic() - fired[0] < 1.0
    assert not worker_processes()


@pytest.mark.parametrize("phase, steps", [("measuring per-layer costs", 400),
                                          ("GPipe and 1F1B: trying", 400), ("DNI pipeline", 100)])
def test_closing_compare_methods_stops_it_within_a_second_in_every_phase(phase, steps, worker_processes,
                                                                        closes_like_stop):
    import time

    from dni_lite.runner import Progress
    run = methods.compare_methods(depth=7, width=512, batch_size=128, steps=steps, eval_every=steps,
                                  repeats=1, micro_batches=(2,), seed=0)
    deadline = time.monotonic() + 120
    for item in run:                       # run until the phase is under way
        assert isinstance(item, Progress), "a round ended before the phase was reached"
        assert time.monotonic() < deadline
        if item.what.startswith(phase) and (phase.startswith("measuring") or worker_processes()):
            break
    closes_like_stop(run)


def test_the_committed_reference_run_loads_with_its_provenance():
    ref = methods.load(methods.reference_path("default"))
    assert ref["provenance"]["command"] == ("python -m dni_lite.bench --preset default "
                                            "--out data/bench_default.json")
    # made by the presets as they are (JSON has lists for tuples)
    assert ref["settings"] == json.loads(json.dumps(dataclasses.asdict(methods.PRESETS["default"])))
    heavy = methods.load(methods.reference_path("heavy"))
    assert heavy["provenance"]["command"].startswith("python -m dni_lite.bench --preset heavy ")
    assert heavy["settings"] == json.loads(json.dumps(dataclasses.asdict(methods.PRESETS["heavy"])))
    assert ("Adam lr 0.0003" in methods.format_table(heavy)
            and "with linear synthesizers on 128 random directions (lr 0.1), targets 1 step(s) late"
            in methods.format_table(heavy))
    assert ("Adam lr 0.0003" in methods.format_table(ref)
            and "with linear synthesizers on 128 random directions (lr 0.03), targets 1 step(s) late"
            in methods.format_table(ref))
    assert "steps of all-core backprop" in methods.format_table(ref)
    for result in (ref, heavy):     # made from committed code, and they measured the control too
        assert result["provenance"]["uncommitted"] == []
        assert "synthetic gradients: the DNI pipeline scored" in methods.format_table(result)
        assert "what the lower stage sends up" in methods.format_table(result)
        # notebook 07 says both presets' synthetic gradients beat their control
        assert "they taught the lower stages something" in methods.format_table(result)
        # ...and that the control never reaches the target
        assert result["methods"][methods.CONTROL]["steps_to_target"] == float("inf")
    with pytest.raises(ValueError, match="preset"):
        methods.reference_path("huge")
