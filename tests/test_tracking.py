"""W&B offline runs: one per trial, grouped by the study, with config, FID, NFE and a grid."""

from __future__ import annotations

import json

import optuna

from .conftest import run_cli
from .wandb_records import records


def read_run(run_dir):
    """The run record's group, job type and config, and the merged history items."""
    (path,) = run_dir.glob("run-*.wandb")
    info, history = {}, {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            info = {"group": record.run.run_group, "job_type": record.run.job_type,
                    "config": {u.key: json.loads(u.value_json) for u in record.run.config.update}}
        elif kind == "history":
            for item in record.history.item:
                history["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
    return info, history


def test_every_trial_is_an_offline_wandb_run(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    overrides = [o for o in tiny_overrides if o != "logger=none"]
    result = run_cli("sweep", *overrides, "logger=wandb", "logger.mode=offline",
                     "search.steps=[2]", "search.n_trials=2")
    assert result.returncode == 0, result.stderr
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    study = optuna.load_study(study_name="digits-heun-linear",
                              storage=f"sqlite:///{out}/studies.db")
    logged = {}
    for run in runs:
        info, history = read_run(run)
        assert info["group"] == "digits-heun-linear" and info["job_type"] == "trial"
        assert info["config"]["model"]["name"] == "digits" and "storage" not in info["config"]
        assert history["nfe"] == 3 and history["samples/_type"] == "image-file"
        assert (run / "files" / history["samples/path"]).is_file()
        logged[info["config"]["trial"]] = history["fid"]
    assert logged == {t.number: t.value for t in study.trials}
