"""W&B offline runs: one per trial, grouped by the study, with config, FID, NFE and a grid."""

from __future__ import annotations

import json

import optuna
import yaml

from skipsearch.search.group import load_sweep
from tests.conftest import free_port, run_cli, run_cli_process, start_cli
from tests.support.wandb_records import records


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
    study = load_sweep(name="digits-heun-linear",
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
    # the summary's per-NFE table, and the artifact's files staged under the output folder
    per_nfe = json.loads((run / "files" / history["per_nfe/path"]).read_text())
    row = dict(zip(per_nfe["columns"], per_nfe["data"][0], strict=True))
    exported = yaml.safe_load((out / "exports" / "digits-heun-linear" / "nfe003.yaml").read_text())
    assert (row["nfe"], row["cell"], row["trial"]) == (3, "heun-steps2",
                                                       exported["study"]["trial"])
    assert row["best_fid"] == exported["score"]["fid"]
    staged = list((out / "wandb" / "data" / "artifacts" / "staging").iterdir())
    assert staged, "W&B staged the schedules outside the output folder"


def offline_runs(out):
    """(job type, trial number or None, history) of every offline run under ``out``."""
    found = []
    for run in sorted((out / "wandb").glob("offline-run-*")):
        info, history, _ = read_run(run)
        found.append((info["job_type"], info["config"].get("trial"), history))
    return found


def test_an_unreachable_wandb_server_falls_back_to_offline_runs(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    overrides = [o for o in tiny_overrides if o != "logger=none"]
    env = {"WANDB_API_KEY": "0" * 40, "WANDB_BASE_URL": f"http://127.0.0.1:{free_port()}"}
    result = run_cli_process("sweep", *overrides, "logger=wandb", "logger.mode=online",
                     "logger.init_timeout=5", "search.steps=[2]", "search.n_trials=2",
                     "search.confirm_top_k=0", env=env)
    assert result.returncode == 0, result.stderr
    assert "switching to offline runs" in result.stdout + result.stderr
    study = load_sweep(name="digits-heun-linear",
                       storage=f"sqlite:///{out}/studies.db")
    runs = offline_runs(out)
    assert sorted(j for j, _, _ in runs) == ["study", "trial", "trial"]
    assert {n: h["fid"] for j, n, h in runs if j == "trial"} == {
        t.number: t.value for t in study.trials}


def test_two_workers_on_one_study_log_every_trial_once(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    overrides = [o for o in tiny_overrides if o != "logger=none"]
    args = [*overrides, "logger=wandb", "logger.mode=offline", "search.steps=[2]",
            "search.n_trials=6", "search.n_startup_trials=1", "search.confirm_top_k=0"]
    workers = [start_cli("sweep", *args) for _ in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err
    study = load_sweep(name="digits-heun-linear",
                       storage=f"sqlite:///{out}/studies.db")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 6
    runs = offline_runs(out)
    trial_runs = sorted(n for j, n, _ in runs if j == "trial")
    assert trial_runs == [t.number for t in complete]  # each trial once, none lost
    assert sum(j == "study" for j, _, _ in runs) == 2  # one study run per worker
