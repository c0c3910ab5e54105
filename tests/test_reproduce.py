"""Reference runs: the files load, carry provenance and record what their command runs;
the first steps of every configuration re-run the same on any CPU."""
import json

import pytest

from dni_lite import reproduce
from dni_lite.experiments.recurrent import CopySettings, StreamSettings


@pytest.mark.parametrize("name", sorted(reproduce.REFERENCES))
def test_every_committed_reference_is_what_its_command_runs(name):
    result = reproduce.load(name)
    prov = result["provenance"]
    assert prov["command"].startswith(f"python -m dni_lite.reproduce {name}")
    assert {"commit", "torch", "device", "wall_s", "dni_lite"} <= set(prov)
    assert [r["label"] for r in result["runs"]] == list(reproduce.REFERENCES[name])
    for run in result["runs"]:
        assert reproduce.settings_from_dict(run["settings"]) == reproduce.REFERENCES[name][run["label"]]
        assert run["rows"][-1]["step"] == run["settings"]["steps"]          # it ran to the end


@pytest.mark.parametrize("name", sorted(reproduce.REFERENCES))
def test_the_first_steps_of_every_reference_configuration_reproduce_on_this_cpu(name):
    result = reproduce.load(reproduce.FIRST_STEPS_NAME)
    assert result["provenance"]["command"].startswith("python -m dni_lite.reproduce first_steps")
    runs = {r["label"]: r for r in result["runs"]}
    assert len(runs) == sum(len(configs) for configs in reproduce.REFERENCES.values())
    for label, settings in reproduce.REFERENCES[name].items():
        run = runs[reproduce.first_steps_label(name, label)]
        assert reproduce.settings_from_dict(run["settings"]) == settings
        assert [r["step"] for r in run["rows"]] == list(range(1, reproduce.FIRST_STEPS + 1))
        assert reproduce.compare(run["rows"], reproduce.first_steps(settings)) == [], label


def test_the_first_steps_check_sees_a_synthetic_gradient_that_does_nothing():
    """The control: DNI whose synthetic gradient had no effect would train exactly as BPTT does."""
    label = "copy, T=2"
    saved = {r["label"]: r for r in reproduce.load(reproduce.FIRST_STEPS_NAME)["runs"]}
    saved = saved[reproduce.first_steps_label("copy", label)]["rows"]
    fresh = reproduce.first_steps(reproduce.REFERENCES["copy"][label])
    assert reproduce.compare(saved, fresh) == []
    inert = [dict(r, **{"train_bits/dni": r["train_bits/bptt"]}) for r in fresh]
    assert any("train_bits/dni" in p for p in reproduce.compare(saved, inert))


def test_settings_survive_the_round_trip_and_bad_ones_are_refused():
    for s in (StreamSettings(methods=("bptt", "dni_one_chunk")), CopySettings(task="repeat_copy", T=4)):
        assert reproduce.settings_from_dict(json.loads(json.dumps(reproduce.settings_to_dict(s)))) == s
    with pytest.raises(ValueError, match="experiment"):
        reproduce.settings_from_dict({"T": 2})
    with pytest.raises(ValueError, match="not valid"):
        reproduce.settings_from_dict({"experiment": "CopySettings", "depth": 3})
    with pytest.raises(ValueError, match="T"):
        reproduce.settings_from_dict({"experiment": "CopySettings", "T": 0})


def test_a_run_writes_a_file_with_provenance_that_load_accepts_and_compare_checks(tmp_path, monkeypatch):
    tiny = {"a": StreamSettings(steps=4, log_every=2, hidden_dim=8, methods=("bptt", "dni"))}
    monkeypatch.setitem(reproduce.REFERENCES, "planted", tiny)
    out = tmp_path / "ref.json"
    reproduce.main(["planted", "--out", str(out)])
    result = reproduce.load(out)
    assert result["provenance"]["command"] == f"python -m dni_lite.reproduce planted --out {out}"
    saved = result["runs"][0]["rows"]
    assert len(saved) == 2 and set(result["runs"][0]["seconds"]) == {"bptt", "dni"}
    fresh, _ = reproduce.run_rows(tiny["a"])
    assert reproduce.compare(saved, fresh) == []
    changed = [dict(saved[0], **{"val_bits/dni": saved[0]["val_bits/dni"] * 1.01})]
    assert "val_bits/dni" in reproduce.compare(changed, fresh[:1])[0]

    monkeypatch.setattr(reproduce, "REFERENCES", {"planted": tiny})
    monkeypatch.setattr(reproduce, "FIRST_STEPS", 3)
    out = tmp_path / "first.json"
    reproduce.main(["first_steps", "--out", str(out)])
    result = reproduce.load(out)
    assert result["provenance"]["command"] == f"python -m dni_lite.reproduce first_steps --out {out}"
    assert [r["label"] for r in result["runs"]] == ["planted: a"]
    assert [r["step"] for r in result["runs"][0]["rows"]] == [1, 2, 3]
    assert reproduce.compare(result["runs"][0]["rows"], reproduce.first_steps(tiny["a"])) == []
    with pytest.raises(ValueError, match="n_steps"):
        reproduce.first_steps(tiny["a"], n_steps=5)          # more than its 4 steps


def test_corrupt_or_incomplete_results_files_are_refused(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        reproduce.load(bad)
    bad.write_text(json.dumps({"reference": "copy", "runs": []}))
    with pytest.raises(ValueError, match="complete"):
        reproduce.load(bad)
    with pytest.raises(FileNotFoundError, match="reproduce"):
        reproduce.load(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="name"):
        reproduce.reference_path("mnist")


def test_the_reference_figure_names_the_reference_the_live_run_and_the_paper():
    from dni_lite.display.reference_plots import mean_rows, reference_figure
    runs = [{"rows": [{"step": 1, "x/dni": 1.0, "seconds/dni": 0.5}, {"step": 2, "x/dni": 3.0, "seconds/dni": 1.0}]},
            {"rows": [{"step": 1, "x/dni": 2.0, "seconds/dni": 0.6}, {"step": 2, "x/dni": 5.0, "seconds/dni": 1.1}]}]
    assert mean_rows(runs, "x/dni") == ([1, 2], [1.5, 4.0])
    fig = reference_figure("t", ["x/dni"], runs, runs[0]["rows"], xs=("step", "seconds/{variant}"),
                           x_titles=("steps", "seconds"), lines={"paper, DNI": 16})
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert names == ["DNI, reference", "DNI, this notebook's run", "paper, DNI"]
    assert list(fig.data[3].x) == [0.5, 1.0]          # the second panel: DNI against its own seconds
    with pytest.raises(ValueError, match="x_titles"):
        reference_figure("t", ["x/dni"], runs, xs=("step",), x_titles=())


def test_provenance_names_the_package_files_that_differ_from_the_commit(monkeypatch):
    import subprocess

    from dni_lite import provenance

    def status(stdout, returncode=0):
        return lambda *a, **k: subprocess.CompletedProcess(a, returncode, stdout=stdout, stderr="")

    monkeypatch.setattr(provenance.subprocess, "run",
                        status(" M dni_lite/parallel/methods.py\nM  dni_lite/bench.py\n"))
    assert provenance.uncommitted() == ["dni_lite/bench.py", "dni_lite/parallel/methods.py"]
    assert provenance.provenance("python -m x")["uncommitted"] == ["dni_lite/bench.py",
                                                                  "dni_lite/parallel/methods.py"]
    monkeypatch.setattr(provenance.subprocess, "run", status(""))
    assert provenance.uncommitted() == []                 # a clean checkout
    monkeypatch.setattr(provenance.subprocess, "run", status("", returncode=128))
    assert provenance.uncommitted() is None               # not a git checkout
