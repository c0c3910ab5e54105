"""Pipelined DNI on torch.distributed: 2 local workers, in order, exact, and clean failures."""
from __future__ import annotations

import dataclasses
import os
from unittest import mock

import pytest
import torch

from dni_lite.parallel import ParallelConfig, WorkerError, bench, train_in_process, train_parallel
from dni_lite.claims import nb07 as claims_nb07
from dni_lite.parallel.stage import build_stages, interface_health, load_data
from dni_lite.parallel.worker import _ACT, _TARGET, _tag, _worker_loop, run_worker

SMALL = dict(width=32, depth=3, batch_size=16, seed=3)


@pytest.fixture(scope="module")
def data():
    return load_data(0)


def _children() -> list[int]:
    """Live child processes of this test process (from /proc)."""
    me, kids = os.getpid(), []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me and fields[0] != "Z":
                kids.append(int(pid))
    return kids


@pytest.mark.parametrize("projection", [0, 8])
def test_two_workers_match_in_process(data, projection):
    config = ParallelConfig(steps=4, trace_steps=4, synth_projection=projection, **SMALL)
    par = train_parallel(config, data=data)
    ref = train_in_process(config, data)
    # worker 1 received the activations of steps 0..3 in order, worker 0 the targets
    assert [s for s, _ in par["trace"][1]["activations"]] == [0, 1, 2, 3]
    assert [s for s, _ in par["trace"][0]["targets"]] == [0, 1, 2, 3]
    assert par["trace"][0]["activations"] == [] and par["trace"][1]["targets"] == []
    for k, key in ((1, "activations"), (0, "targets")):
        for (_, got), (_, want) in zip(par["trace"][k][key], ref["trace"][k][key]):
            assert got.shape == want.shape == (16, 32)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # a target is a real gradient (not zeros) and the first step's loss is identical
    assert float(par["trace"][0]["targets"][0][1].abs().sum()) > 0
    assert par["losses"][0] == pytest.approx(ref["losses"][0], rel=1e-6)
    for k in range(2):
        for name, tensor in ref["state"][k]["module"].items():
            torch.testing.assert_close(par["state"][k]["module"][name], tensor,
                                       rtol=1e-4, atol=1e-5)
    assert par["test_accuracy"] == pytest.approx(ref["test_accuracy"], abs=0.11)
    assert _children() == []


class _RecordingDist:
    """torch.distributed for one rank, in this process: records the messages; all arrive as zeros."""

    class Work:
        def __init__(self, calls: list, tag: int, buf: torch.Tensor | None) -> None:
            self.calls, self.tag, self.buf = calls, tag, buf

        def wait(self) -> None:
            if self.buf is not None:
                self.buf.zero_()
                self.calls.append(("wait", self.tag))

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def irecv(self, buf, src, tag):
        self.calls.append(("post", tag))
        return self.Work(self.calls, tag, buf)

    def isend(self, buf, dst, tag):
        self.calls.append(("send", tag))
        return self.Work(self.calls, tag, None)

    def recv(self, buf, src, tag):
        buf.zero_()

    def send(self, buf, dst, tag):
        pass

    def barrier(self):
        pass


@pytest.mark.parametrize("rank", [0, 1])
def test_workers_post_their_receives_a_step_ahead(data, rank):
    """A message must land while its receiver computes, not only when it asks for it. Worker 0
    posts the receive of step t's target as soon as it sends step t's activation; worker 1
    posts the receive of activation 0 before training starts and of activation t + 1 as soon
    as activation t has arrived."""
    config = ParallelConfig(steps=4, **SMALL)
    dist = _RecordingDist()
    _worker_loop(config, data, rank, 2, dist)
    calls = dist.calls
    for t in range(config.steps):
        if rank == 0:
            sent = calls.index(("send", _tag(t, _ACT)))
            assert calls[sent + 1] == ("post", _tag(t, _TARGET))
            assert calls.index(("wait", _tag(t, _TARGET))) > sent + 1
        else:
            arrived = calls.index(("wait", _tag(t, _ACT)))
            if t == 0:
                assert calls.index(("post", _tag(0, _ACT))) < arrived
            if t + 1 < config.steps:
                assert calls[arrived + 1] == ("post", _tag(t + 1, _ACT))
            else:
                assert ("post", _tag(t + 1, _ACT)) not in calls     # nothing left pending
    assert len([c for c in calls if c[0] == "post"]) == config.steps


def test_failing_worker_stops_everything(data):
    config = ParallelConfig(steps=200, fail_rank=1, fail_step=2, **SMALL)
    with pytest.raises(WorkerError, match=r"worker 1 of 2 failed .*injected failure on worker 1 "
                                          r"at step 2.*all workers were stopped"):
        train_parallel(config, data=data)
    assert _children() == []


def test_wrong_number_of_workers_refused(data, monkeypatch):
    with pytest.raises(ValueError, match="needs exactly 2 worker processes, got processes=3"):
        train_parallel(ParallelConfig(**SMALL), processes=3, data=data)
    with pytest.raises(ValueError, match="workers must be between 2 and 2"):
        ParallelConfig(depth=1, workers=3).validate()
    with pytest.raises(ValueError, match="workers must be between 2 and 4"):
        ParallelConfig(workers=1).validate()
    # a worker started by torchrun with the wrong world size refuses before any messages
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(ValueError, match="start exactly 2"):
        run_worker(ParallelConfig(**SMALL), data=data)
    assert _children() == []


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="target_delay"):
        ParallelConfig(target_delay=-1).validate()
    with pytest.raises(ValueError, match="synth_kind"):
        ParallelConfig(synth_kind="conv").validate()
    with pytest.raises(ValueError, match=r"synth_projection must be an integer >= 0"):
        ParallelConfig(synth_projection=-1).validate()
    with pytest.raises(ValueError, match="same number of workers"):
        train_parallel([ParallelConfig(), ParallelConfig(workers=3)])
    with pytest.raises(ValueError, match="device"):
        train_in_process(ParallelConfig(steps=1, **SMALL), device="tpu")


def test_stage_split_and_delay_zero_matches_schedule(data):
    assert ParallelConfig(depth=3, workers=2).stage_layers() == [(0, 2), (2, 4)]
    assert ParallelConfig(depth=3, workers=4).stage_layers() == [(0, 1), (1, 2), (2, 3), (3, 4)]
    # without delay the targets are used in the step they belong to
    ref = train_in_process(ParallelConfig(steps=3, trace_steps=3, target_delay=0, **SMALL), data)
    assert [s for s, _ in ref["trace"][0]["targets"]] == [0, 1, 2]


def test_interface_health_reads_the_final_weights_of_the_lower_stages(data):
    config = ParallelConfig(steps=30, batchnorm=False, **SMALL).validate()   # as the benchmark's
    initial = interface_health(config, [s.state() for s in build_stages(config, data)], data)
    # the zero-SG control never moves its lower stage: its health is the initial weights'
    zeroed = train_in_process(dataclasses.replace(config, ablation="zero_synthetic_gradient"), data)
    assert interface_health(config, zeroed["state"], data) == initial
    trained = train_in_process(config, data)
    assert interface_health(config, trained["state"], data) != initial
    # a lower stage whose biases were pushed far below zero sends up nothing but dead units
    killed = [dict(s) for s in trained["state"]]
    killed[0] = {"module": {k: (v - 1e3 if k.endswith("bias") else v)
                            for k, v in trained["state"][0]["module"].items()}}
    assert [h["dead"] for h in interface_health(config, killed, data)] == [1.0]
    with pytest.raises(ValueError, match="one entry per stage"):
        interface_health(config, trained["state"][:1], data)


def test_synthesizer_regresses_its_kept_prediction_without_a_second_forward(data):
    calls = []

    def count_forwards(config, data):
        stages = build_stages(config, data)
        stages[0].interface.synthesizer.register_forward_hook(lambda *_: calls.append(1))
        return stages

    config = ParallelConfig(steps=6, **SMALL)
    with mock.patch("dni_lite.parallel.reference.build_stages", count_forwards):
        calls.clear()
        delay1 = train_in_process(config, data)
        once = len(calls)
        calls.clear()
        delay2 = train_in_process(dataclasses.replace(config, target_delay=2), data)
        stale = len(calls)
    assert once == 6            # one prediction per step, no forward to regress
    # a target two steps late finds the synthesizer changed (all but the first): it predicts again
    assert stale == 6 + 5
    # with the target regressed before the next prediction, delay 1 is delay 0's arithmetic exactly
    delay0 = train_in_process(dataclasses.replace(config, target_delay=0), data)
    assert claims_nb07.same_weights(delay1, delay0)
    assert not claims_nb07.same_weights(delay1, delay2)


def test_bench_pieces(data):
    config = ParallelConfig(steps=10, **SMALL)
    costs = bench.stage_costs(config, data, repeats=3)
    assert set(costs) == {"forward", "backward", "synth"}
    assert all(len(v) == 2 and all(c >= 0 for c in v) for v in costs.values())
    assert costs["synth"][1] == 0.0 and costs["synth"][0] > 0
    # equal stages, no delay, free synthesizers: the pipeline is K times faster
    p = bench.predict({"forward": [1.0, 1.0], "backward": [2.0, 2.0], "synth": [0.0, 0.0]},
                      0.0, 1000, 10)
    assert p["speedup"] == pytest.approx(2.0, rel=0.01)
    assert bench.time_to_accuracy([(10, 1.0, 20.0), (20, 2.0, 45.0)], 40.0) == 2.0
    assert bench.time_to_accuracy([(10, 1.0, 20.0)], 40.0) == float("inf")
    with pytest.raises(ValueError, match="widths"):
        next(bench.benchmark(widths=[]))


def test_closing_the_benchmark_stops_it_within_a_second_and_leaves_no_worker(worker_processes,
                                                                            closes_like_stop):
    from dni_lite.runner import Progress
    run = bench.benchmark(widths=(32,), steps=300, repeats=1, eval_every=300)
    seen = set()
    for item in run:                       # wait until the parallel run's workers are busy
        assert isinstance(item, Progress)
        seen.add(item.what)
        if "pipelined" in item.what and worker_processes():
            break
    closes_like_stop(run)
    assert any("backprop" in w for w in seen)
