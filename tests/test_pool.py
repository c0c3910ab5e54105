"""pool: independent runs in worker processes compute what they compute in this one."""
import pytest
import torch

from dni_lite.claims import nb05
from dni_lite.experiments.recurrent import CopySettings, copy_experiment
from dni_lite.pool import final_values, map_one_thread
from dni_lite.runner import run_to_end

SMALL = CopySettings(task="repeat_copy", T=2, hidden_dim=16, steps=120, log_every=20)


def test_map_one_thread_keeps_order_restores_threads_and_refuses_bad_process_counts():
    threads = torch.get_num_threads()
    assert map_one_thread(abs, [-3, 1, -2]) == [3, 1, 2]
    assert torch.get_num_threads() == threads
    assert map_one_thread(abs, [-3, 1, -2], processes=2) == [3, 1, 2]
    for bad in (0, 65, 1.5):
        with pytest.raises(ValueError, match="processes"):
            map_one_thread(abs, [1], processes=bad)


def test_variants_trained_apart_in_two_processes_equal_the_side_by_side_run():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                           # as in every worker
    try:
        _, joint = run_to_end(copy_experiment(SMALL))
    finally:
        torch.set_num_threads(threads)
    (apart,) = final_values(copy_experiment, [SMALL], ["solved", "train_bits"], processes=2)
    assert list(apart["train_bits"]) == list(SMALL.methods)           # the settings' order, not the jobs'
    assert apart["train_bits"] == joint.final("train_bits")            # exactly the same arithmetic
    assert apart["solved"] == joint.final("solved")
    assert set(apart["seconds"]) == set(SMALL.methods) and all(s > 0 for s in apart["seconds"].values())
    # the control of this test: a different run does not match, so the equality above is not vacuous
    (other,) = final_values(copy_experiment, [SMALL.replace(seed=1)], ["train_bits"])
    assert other["train_bits"] != joint.final("train_bits")


def test_nb05_sweep_reuses_a_given_run_and_validates_its_arguments():
    _, run_t2 = run_to_end(copy_experiment(SMALL))
    table = nb05.sweep((1, 2), SMALL, runs={2: run_t2, 7: run_t2})    # a run for a T not swept is ignored
    assert list(table) == [1, 2]
    assert table[2]["seconds"] == dict(run_t2.seconds)                 # reused, not trained again
    assert table[1]["train_bits"] != table[2]["train_bits"]
    for bad, name in (((), "T_values"), ((0,), "T"), ((2.5,), "T")):
        with pytest.raises(ValueError, match=name):
            nb05.sweep(bad, SMALL)
    with pytest.raises(ValueError, match="processes"):
        nb05.sweep((2,), SMALL, runs={2: run_t2}, processes=0)
