"""W&B offline runs: one per trial, grouped by the study, with config, FID, NFE and a grid."""

from __future__ import annotations

import json

import optuna

from .conftest import run_cli
from .wandb_records import records


def read_run(run_dir):
    """The run record's group, job type and config, merged history items, artifact entries."""
    (path,) = run_dir.glob("run-*.wandb")
    info, history, artifacts = {}, {}, {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            info = {"group": record.run.run_group, "job_type": record.run.job_type,
                    "config": {u.key: json.loads(u.value_json) for u in record.run.config.update}}
        elif kind == "history":
            for item in record.history.item:
                key = "/".join(item.nested_key) or item.key
                history.setdefault(key + "[]", []).append(json.loads(item.value_json))
                history[key] = json.loads(item.value_json)
        elif kind == "artifact":
            artifacts[record.artifact.type] = sorted(
                e.path for e in record.artifact.manifest.contents)
    return info, history, artifacts


def test_every_trial_is_an_offline_wandb_run(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    overrides = [o for o in tiny_overrides if o != "logger=none"]
    result = run_cli("sweep", *overrides, "logger=wandb", "logger.mode=offline",
                     "search.steps=[2]", "search.n_trials=3", "search.n_startup_trials=1",
                     "pruner=median", "pruner.n_startup_trials=1")
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="digits-heun-linear",
                              storage=f"sqlite:///{out}/studies.db")
    logged, study_runs = {}, []
    for run in sorted((out / "wandb").glob("offline-run-*")):
        info, history, artifacts = read_run(run)
        assert info["group"] == "digits-heun-linear"
        assert info["config"]["model"]["name"] == "digits" and "storage" not in info["config"]
        if info["job_type"] == "study":
            study_runs.append((run, history, artifacts))
            continue
        assert info["job_type"] == "trial" and history["nfe"] == 3
        number = info["config"]["trial"]
        trial = study.trials[number]
        # FID at every stage is in the run's history, in order
        assert history["stage/n_samples[]"] == sorted(trial.intermediate_values)
        assert history["stage/fid[]"] == [trial.intermediate_values[k]
                                          for k in sorted(trial.intermediate_values)]
        if history["pruned"]:
            assert "samples/path" not in history
        else:
            assert history["samples/_type"] == "image-file"
            assert (run / "files" / history["samples/path"]).is_file()
        logged[number] = history["fid"]
    assert logged == {t.number: t.intermediate_values[max(t.intermediate_values)]
                      for t in study.trials}

    (run, history, artifacts), = study_runs
    table = json.loads((run / "files" / history["trials/path"]).read_text())
    assert [row[0] for row in table["data"]] == [t.number for t in study.trials]
    assert [row[table["columns"].index("state")] for row in table["data"]] == [
        t.state.name for t in study.trials]
    front = json.loads((run / "files" / history["pareto_front/path"]).read_text())
    assert [row[0] for row in front["data"]] == [3]
    assert {"nfe003.yaml", "best.yaml", "pareto.yaml"} <= set(artifacts["schedules"])
