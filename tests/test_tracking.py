"""W&B offline runs: one per trial, grouped by the study, with config, scores, NFE and a grid."""

from __future__ import annotations

import json
import time

import optuna
import pytest
import yaml
from google.protobuf.message import DecodeError

from skipsearch.search.group import load_sweep
from tests.conftest import free_port, run_cli, run_cli_process, start_cli
from tests.support.wandb_records import records


def read_run(run_dir):
    """The run record's group, job type and config, merged history and summary items (under
    ``summary/``), artifact entries."""
    (path,) = run_dir.glob("run-*.wandb")
    info, history, artifacts = {}, {}, {}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            info = {"group": record.run.run_group, "job_type": record.run.job_type,
                    "name": record.run.display_name,
                    "config": {u.key: json.loads(u.value_json) for u in record.run.config.update}}
        elif kind == "history":
            for item in record.history.item:
                key = "/".join(item.nested_key) or item.key
                history.setdefault(key + "[]", []).append(json.loads(item.value_json))
                history[key] = json.loads(item.value_json)
        elif kind == "summary":
            for item in record.summary.update:
                key = "/".join(item.nested_key) or item.key
                history[f"summary/{key}"] = json.loads(item.value_json)
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
        wait_for_exit(run)
        info, history, artifacts = read_run(run)
        assert info["group"] == "digits-heun-linear"
        assert info["config"]["model"]["name"] == "digits" and "storage" not in info["config"]
        if info["job_type"] == "study":
            study_runs.append((run, history, artifacts))
            continue
        assert info["job_type"] == "trial" and history["nfe"] == 3
        number = info["config"]["cell_trial"]  # one cell: its numbers are the sweep's
        assert info["config"]["trial"] == f"heun-steps2#{number}"
        assert info["name"] == f"digits-heun-linear/heun-steps2#{number}"
        trial = study.trials[number]
        # the search score at every stage is in the run's history, in order
        assert history["stage/n_samples[]"] == sorted(trial.intermediate_values)
        assert history["stage/score[]"] == [trial.intermediate_values[k]
                                            for k in sorted(trial.intermediate_values)]
        # the search metric as score and under its own name
        assert history["digits_fid"] == history["score"]
        if history["pruned"]:
            assert "samples/path" not in history
        else:
            assert history["samples/_type"] == "image-file"
            assert (run / "files" / history["samples/path"]).is_file()
        logged[number] = history["score"]
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
    assert row["best_score"] == exported["score"]["value"]
    # the confirm metric (digits_fid's default: digits_fd_ae) of the best, and the reversals
    other = exported["score"]["metrics"]["digits_fd_ae"]
    assert row["digits_fd_ae_score"] == other["value"]
    assert row["digits_fd_ae_delta"] == other.get("delta")
    assert row["digits_fd_ae_worse"] == other.get("worse")
    assert row["reversed_on"] == ",".join(exported["score"]["reversed"])
    assert history["summary/metric"] == "digits_fid"
    assert history["summary/reversed"] == ("NFE 3: reversed on digits_fd_ae"
                                           if exported["score"]["reversed"] else "-")
    assert any(key.startswith("score_vs_nfe") for key in history), sorted(history)
    # the figure with its 95% intervals, as the report draws it, beside the exports and in W&B
    assert history["score_vs_nfe_figure/_type"] == "image-file"
    assert (out / "exports" / "digits-heun-linear" / "score-vs-nfe.png").stat().st_size > 1000
    staged = list((out / "wandb" / "data" / "artifacts" / "staging").iterdir())
    assert staged, "W&B staged the schedules outside the output folder"


def test_trial_runs_are_named_as_the_logs_name_them_and_hold_their_own_sampler(
        tiny_overrides, tmp_path):
    """Two cells: every run name is unique and each run's config has its trial's steps, NFE."""
    out = tmp_path / "out"
    overrides = [o for o in tiny_overrides if o != "logger=none"]
    result = run_cli("sweep", *overrides, "logger=wandb", "logger.mode=offline",
                     "search.steps=[2,3]", "search.n_trials=2", "search.n_startup_trials=1",
                     "search.confirm_top_k=0")
    assert result.returncode == 0, result.stderr
    study = load_sweep(name="digits-heun-linear", storage=f"sqlite:///{out}/studies.db")
    labels = {f"{study.cell_of(t.number).study_name.rsplit('/', 1)[1]}#"
              f"{study.where(t.number).number}": t for t in study.trials}
    names = []
    for run in sorted((out / "wandb").glob("offline-run-*")):
        wait_for_exit(run)
        info, history, _ = read_run(run)
        if info["job_type"] != "trial":
            continue
        config = info["config"]
        trial = labels[config["trial"]]
        names.append(info["name"])
        assert info["name"] == f"digits-heun-linear/{config['trial']}"
        assert config["steps"] == trial.user_attrs["steps"] == config["sampler"]["steps"]
        assert config["nfe"] == trial.user_attrs["nfe"] == history["nfe"]
        assert f"trial {config['trial']} (NFE {config['nfe']})" in result.stderr + \
            result.stdout  # the log line names it the same way
    assert sorted(names) == sorted(f"digits-heun-linear/{label}" for label in labels)


def offline_runs(out):
    """(job type, trial number or None, history) of every offline run under ``out``."""
    found = []
    for run in sorted((out / "wandb").glob("offline-run-*")):
        info, history, _ = read_run(run)
        found.append((info["job_type"], info["config"].get("cell_trial"), history))
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
    assert {n: h["score"] for j, n, h in runs if j == "trial"} == {
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


def wait_for_exit(run_dir, seconds: float = 60.0) -> None:
    """Wait until W&B's writer, which flushes after the run closes, wrote its exit record."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for path in run_dir.glob("run-*.wandb"):
            try:
                if any(r.WhichOneof("record_type") == "exit" for r in records(path)):
                    return
            except DecodeError:  # a record the writer is still writing
                pass
        time.sleep(0.2)
    raise AssertionError(f"W&B wrote no exit record to {run_dir} in {seconds} s")


def test_the_study_run_names_the_metric_and_a_reversal(tmp_path, monkeypatch):
    """A hand-made sweep whose best at NFE 3 gains on digits FID and loses on digits FD-AE."""
    from skipsearch.search.catalog import final_scores
    from skipsearch.search.summary import study_tables, summarize
    from skipsearch.tracking import WandbTracker
    from tests.cli.test_studies import confirm_two_metrics, make_sweep

    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    url = f"sqlite:///{tmp_path}/studies.db"
    make_sweep(url, "gamma", "digits", {2: [(30.0, 1.0, 1.0), (25.0, 0.9, 0.8)],
                                        3: [(20.0, 1.0, 1.0), (18.5, 0.95, 0.9)]},
               metric="digits_fid")
    confirm_two_metrics(url, "gamma", 2, 0, 1, (31.0, 26.0, (-6.0, -4.0)),
                        (4.0, 4.7, (0.2, 1.2)))
    sweep = load_sweep(url, "gamma")
    rows = summarize(sweep, final_scores(sweep)[1])
    tracker = WandbTracker("skipsearch", None, "gamma", "offline", tmp_path,
                           {"metric": {"name": "digits_fid"}})
    tracker.log_study(study_tables(sweep, rows, None))
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    wait_for_exit(run)
    info, history, _ = read_run(run)
    assert info["job_type"] == "study"
    assert history["summary/metric"] == "digits_fid"
    assert history["summary/reversed"] == "NFE 3: reversed on digits_fd_ae"
    per_nfe = json.loads((run / "files" / history["per_nfe/path"]).read_text())
    table = [dict(zip(per_nfe["columns"], r, strict=True)) for r in per_nfe["data"]]
    assert [(r["nfe"], r["reversed_on"], r["digits_fd_ae_worse"]) for r in table] == [
        (3, "digits_fd_ae", True), (5, "", None)]
    assert table[0]["digits_fd_ae_delta"] == pytest.approx(0.7)
    assert table[0]["best_score"] == 26.0 and table[1]["best_score"] == 18.5
