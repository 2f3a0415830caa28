"""The CLI end to end on tiny random networks: sweep, resume, export -> sample, bad input."""

from __future__ import annotations

import copy
import re
import socket
import sqlite3
from contextlib import closing
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from skipsearch.cli import COMMANDS, compose_config, guarded, main, precheck_args, runner_of
from skipsearch.configuration.weights import file_sha256
from skipsearch.search.group import GROUP_ATTR, load_sweep
from skipsearch.tuning.schedule import SkipSchedule
from skipsearch.tuning.schedule_file import FORMAT
from tests.conftest import run_cli, run_cli_process

SWEEP = ["search.steps=[2,3]", "search.n_startup_trials=1"]


def study_trials(out):
    study = load_sweep(name="digits-heun-linear",
                       storage=f"sqlite:///{out}/studies.db")
    return study.get_trials()


def test_sweep_resumes_the_same_study(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    first = run_cli("sweep", *tiny_overrides, *SWEEP, "search.n_trials=2")
    assert first.returncode == 0, first.stderr
    assert "digits FID per NFE" in first.stdout and "exports" in first.stdout
    assert "digits FD-AE change [95% CI]" in first.stdout  # the second ruler, confirmed
    before = study_trials(out)
    assert len(before) == 4  # two trials in each of the two cells
    cells = load_sweep(name="digits-heun-linear", storage=f"sqlite:///{out}/studies.db").cells
    assert all(cell.metric_names == ["digits_fid"] for cell in cells)  # the dashboard's name
    assert [t.user_attrs["steps"] for t in before[:2]] == [2, 3]
    assert all(t.params["rho_top"] == 1.0 for t in before[:2])  # the baselines come first

    again = run_cli("sweep", *tiny_overrides, *SWEEP, "search.n_trials=3")
    assert again.returncode == 0, again.stderr
    after = study_trials(out)
    assert len(after) == 6
    for old, new in zip(before, after[:4], strict=True):
        assert (old.number, old.params, old.value) == (new.number, new.params, new.value)

    same = run_cli("sweep", *tiny_overrides, *SWEEP, "search.n_trials=3")
    assert same.returncode == 0 and len(study_trials(out)) == 6
    # other precision, other images: the study refuses to mix them
    other = run_cli("sweep", *tiny_overrides, *SWEEP, "search.n_trials=5",
                    "precision.network=bf16")
    assert other.returncode == 2 and "precision.network='bf16': study digits-heun-linear/" \
        "heun-steps2 was run with precision.network='fp32'; restore it" in other.stderr
    assert len(study_trials(out)) == 6


def test_export_then_sample_reproduces_the_fid(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    sweep = run_cli("sweep", *tiny_overrides, *SWEEP, "search.n_trials=3")
    assert sweep.returncode == 0, sweep.stderr
    export = run_cli("export", *tiny_overrides)
    assert export.returncode == 0, export.stderr
    best = out / "exports" / "digits-heun-linear" / "best.yaml"
    record = yaml.safe_load(best.read_text())
    assert record["model"]["sha256"] and record["score"]["feature_sha256"]
    assert len(record["schedule"]["coefficients"]) == 6
    assert record["sampler"]["nfe"] == 2 * record["sampler"]["steps"] - 1
    assert record["precision"] == {"network": "fp32", "sampler": "float64", "noise_device": "cpu"}
    # confirmed on 30 fresh seeds right after the 24 search seeds; both scores are kept
    assert record["score"]["confirmed"] is True
    assert record["score"]["seeds"] == {"start": 24, "stop": 54, "class_label": "seed % label_dim"}
    assert record["score"]["search"]["seeds"] == {"start": 0, "stop": 24,
                                                  "class_label": "seed % label_dim"}

    sample = run_cli("sample", *tiny_overrides, f"schedule={best}", "batch_size=5")
    assert sample.returncode == 0, sample.stderr
    fid, exported = map(float, re.search(r"FID (\S+) \(exported: (\S+)\)", sample.stdout).groups())
    assert exported == pytest.approx(record["score"]["value"], rel=1e-9)
    assert record["score"]["metric"] == "digits_fid"
    assert set(record["score"]["metrics"]) == {"digits_fd_ae"}
    assert fid == pytest.approx(exported, rel=1e-4)
    npz = __import__("numpy").load(out / "samples" / "best" / "samples.npz")
    assert npz["images"].shape == (30, 16, 16, 1) and npz["images"].dtype.name == "uint8"
    assert (out / "samples" / "best" / "grid.png").stat().st_size > 0
    fewer = run_cli("sample", *tiny_overrides, f"schedule={best}", "sample.n=12")
    assert fewer.returncode == 0, fewer.stderr
    assert "(exported:" not in fewer.stdout  # 12 images do not compare with 30
    assert re.search(rf"FID \S+ on 12 images; the exported {exported:.10g} is on 30 \(the "
                     r"score depends on the image count: sample.n=30 compares\)", fewer.stdout)


# Malformed input, one case a line: (command and its arguments, text the one-line error holds).
# {files} is a folder of bad files (see bad_files), {port} a port something listens on.
BAD = {
    "unknown model": (["sweep", "model=imagenet_nope"], "model=imagenet_nope"),
    "inverted rho bounds": (["sweep", "skip.space.rho_top.low=0.9", "skip.space.rho_top.high=0.6"],
                            "skip.space.rho_top"),
    "steps below one": (["sweep", "search.steps=[0,3]"], "search.steps"),
    "sampler steps below one": (["sample", "sampler.steps=0"], "sampler.steps"),
    "missing schedule": (["sample", "schedule=does/not/exist.yaml"], "schedule="),
    "wrong type": (["sweep", "search.n_trials=many"], "search.n_trials"),
    "unknown key": (["sweep", "search.n_trails=3"],
                    "search.n_trails=3: no such key; did you mean search.n_trials?"),
    "unknown key of a command": (["sample", "sample.nn=3"], "did you mean sample.n or"),
    "unknown group": (["sweep", "nosuchgroup.x=3"],
                      "no such key; `skipsearch sweep --cfg job` prints every key"),
    "unknown command": (["swep"], "unknown command"),
    "export before any sweep": (["export"], "storage.url"),
    "edm without a path": (["sweep", "model=edm"], "model.path"),
    "sigmas not decreasing": (["sweep", "sampler.discretization=list",
                               "sampler.sigmas=[80,1,5]"], "sampler.sigmas"),
    "negative churn": (["sweep", "sampler=edm_stochastic", "sampler.S_churn=-1"],
                       "sampler.S_churn"),
    "edm pickle without trust": (["inspect", "model=edm", "model.path=pyproject.toml"],
                                 "model.trust_pickle"),
    "pruning a multi-objective study": (["sweep", "sweeps=[digits,pareto]", "pruner=median"],
                                        "pruner.kind"),
    "stage beyond the sample count": (["sweep", "pruner=median", "pruner.stages=[1.5]"],
                                      "pruner.stages"),
    "unknown objective": (["sweep", "search.objectives=[fid,time]"], "search.objectives"),
    "cma-es with two objectives": (["sweep", "search=cmaes", "search.objectives=[score,nfe]"],
                                   "search.sampler='cmaes'"),
    "final seeds overlap the search": (["sweep", "metric.final_seed_start=10"],
                                       "metric.final_seed_start=10"),
    "unknown sampler to search": (["sweep", "search.samplers=[heun,rk4]"], "search.samplers"),
    "discretization rho off its bounds": (["sweep", "search.disc_rho.low=8",
                                           "search.disc_rho.high=12"], "search.disc_rho"),
    "fid-infinity not a bool": (["sample", "metric.fid_infinity=maybe"], "metric.fid_infinity"),
    "database that does not answer": (["sweep", "storage.url=postgresql+psycopg://skipsearch:"
                                       "s3cret@127.0.0.1:1/nowhere"], "storage.url='postgresql"),
    "unknown database driver": (["sweep", "storage.url=nosuchdb://host/db"], "storage.url"),
    "study database in memory": (["sweep", "storage.url=sqlite:///:memory:"],
                                 "storage.url='sqlite:///:memory:': an in-memory database"),
    "export from memory": (["export", "storage.url=sqlite://"], "a study must outlive it"),
    "studies of memory": (["studies", "storage.url=sqlite://"], "a study must outlive it"),
    "grace period under two heartbeats": (["sweep", "storage.heartbeat_interval=60",
                                           "storage.grace_period=100"],
                                          "storage.grace_period=100: shorter than two heartbeats"),
    "model weights that are not safetensors": (["sweep", "model.weights=pyproject.toml"],
                                               "model.weights"),
    "feature weights that are not safetensors": (["sweep", "metric.weights=README.md"],
                                                 "metric.weights"),
    "model weights without a config": (["sweep", "model.weights={files}/no_config.safetensors"],
                                       "no metadata 'config': not written by skipsearch's"),
    "model weights whose config is not JSON": (
        ["sweep", "model.weights={files}/config_not_json.safetensors"],
        "metadata 'config' is not JSON"),
    "model weights with another network's config": (
        ["sweep", "model.weights={files}/config_fields.safetensors"],
        "metadata 'config' lacks label_dim"),
    "model weights with a word for sigma_data": (
        ["sweep", "model.weights={files}/sigma_data_word.safetensors"],
        "metadata 'sigma_data' is 'abc'"),
    "model weights with a foreign tensor": (
        ["sweep", "model.weights={files}/foreign_tensor.safetensors"],
        "tensor extra.weight is not part of the digits denoiser"),
    "model weights missing a tensor": (
        ["inspect", "model.weights={files}/missing_tensor.safetensors"],
        "tensor conv_in.weight is missing"),
    "model weights of another shape": (
        ["inspect", "model.weights={files}/misshapen.safetensors"],
        "tensor conv_in.weight has shape [4, 1, 3, 3], the network built from the file's "
        "config wants [8, 1, 3, 3]"),
    "model weights with an extra tensor": (
        ["inspect", "model.weights={files}/extra_tensor.safetensors"],
        "tensor enc.9.weight is not in the network built from the file's config"),
    "classifier weights as the model": (["sweep", "model.weights={files}/classifier.safetensors"],
                                        "looks like the digits classifier's weights"),
    "model weights as the feature network": (
        ["sweep", "metric.weights={files}/model.safetensors"],
        "not the digits classifier's; give the digits classifier's file as metric.weights"),
    "feature weights without a config": (
        ["sweep", "metric.weights={files}/classifier_no_config.safetensors"],
        "classifier_no_config.safetensors': no metadata 'config'"),
    "feature weights of another shape": (
        ["refstats", "metric.weights={files}/classifier_misshapen.safetensors"],
        "tensor head.weight has shape [3, 16], the network built from the file's config "
        "wants [10, 16]"),
    "reference file of the wrong format": (["sweep", "metric.reference=pyproject.toml"],
                                           "metric.reference"),
    "edm checkpoint that is not a pickle": (["inspect", "model=edm", "model.path=README.md",
                                             "model.trust_pickle=true"], "model.path"),
    "inception weights missing": (["sweep", "metric=fid", "metric.reference=digits",
                                   "metric.inception_weights=nope.pth"],
                                  "weights-inception-2015-12-05-6726825d.pth"),
    "unknown metric": (["sweep", "metric.name=fidd"], "metric.name='fidd': choose one of"),
    "confirm on an unknown metric": (["sweep", "metric.confirm=[fid_dino]"],
                                     "metric.confirm='fid_dino': is not a registered metric"),
    "confirm on the search metric": (["sweep", "metric.confirm=[digits_fid]"],
                                     "metric.confirm='digits_fid': is the search metric"),
    "confirm on a metric twice": (["sweep", "metric.confirm=[digits_fd_ae,digits_fd_ae]"],
                                  "names a metric twice"),
    "confirm metrics not a list": (["sweep", "metric.confirm=kid"],
                                   "metric.confirm='kid': give a list of metric names"),
    "confirm on fd_dinov2 without its weights": (
        ["sweep", "metric.confirm=[fd_dinov2]"],
        "metric.dinov2_weights=None: needs dinov2_vitl14_pretrain.pth"),
    "autoencoder weights that are not safetensors": (
        ["sweep", "metric.autoencoder_weights=README.md"], "metric.autoencoder_weights"),
    "clip score without its model folder": (["sweep", "metric=clip_score"],
                                            "metric.clip_weights=None: needs a local CLIP"),
    "fd_dinov2 without a reference": (["sweep", "metric=fd_dinov2",
                                       "metric.dinov2_weights=README.md"],
                                      "metric.reference=None: fd_dinov2 needs reference data"),
    "unknown reversal rule": (["sweep", "metric.on_reversal=ignore"],
                              "metric.on_reversal='ignore'"),
    "first objective not the search metric": (
        ["sweep", "search.objectives=[digits_fd_ae]"],
        "the first objective is the search metric, metric.name=digits_fid"),
    "unknown second objective": (["sweep", "search.objectives=[score,speed]"],
                                 "speed is neither nfe nor a registered metric"),
    "three objectives": (["sweep", "search.objectives=[score,nfe,digits_fd_ae]"],
                         "search.objectives"),
    "unknown network precision": (["sweep", "precision.network=fp8"], "precision.network"),
    "unknown compile mode": (["sweep", "compile=fastest"], "compile='fastest'"),
    "cuda graphs on the cpu": (["sample", "cuda_graph=true"], "cuda_graph=True"),
    # schedules: files, config values
    "schedule with a NaN coefficient": (["sample", "schedule={files}/nan.yaml"],
                                        "coefficient 2 is nan"),
    "schedule with a negative coefficient": (["sample", "schedule={files}/negative.yaml"],
                                             "coefficient 2 is -5.0"),
    "schedule with a huge coefficient": (["inspect", "schedule={files}/huge.yaml"],
                                         "coefficient 0 is 1000000000.0"),
    "schedule with a word for a coefficient": (["sample", "schedule={files}/word.yaml"],
                                               "coefficient 0 is 'abc', not a number"),
    "schedule with a NaN coefficient to inspect": (["inspect", "schedule={files}/nan.yaml"],
                                                   "coefficient 2 is nan"),
    "schedule without score.seeds": (["sample", "schedule={files}/no_seeds.yaml"],
                                     "the key score.seeds is missing"),
    "schedule without sampler.steps": (["sample", "schedule={files}/no_steps.yaml"],
                                       "the key sampler.steps is missing"),
    "schedule with an unknown sampler": (["sample", "schedule={files}/rk9.yaml"],
                                         "sampler.name is 'rk9'"),
    "schedule of another format": (["sample", "schedule={files}/pareto.yaml"],
                                   "not skipsearch-schedule/1"),
    "schedule that is binary": (["sample", "schedule={files}/binary.yaml"], "schedule="),
    "schedule that is empty": (["sample", "schedule={files}/empty.yaml"], "the file is empty"),
    "schedule that is an export folder": (["sample", "schedule={files}/exports"], "is a folder"),
    "schedule that is a folder": (["inspect", "schedule={files}"], "is a folder"),
    "schedule with 4 coefficients for 6 skips": (["sample", "schedule={files}/four.yaml"],
                                                 "4 coefficients for a model with 6 skips"),
    "schedule with 4 coefficients to inspect": (["inspect", "schedule={files}/four.yaml"],
                                                "4 coefficients for a model with 6 skips"),
    "schedule of other weights": (["sample", "schedule={files}/other_weights.yaml"],
                                  "weights sha256 0123456789ab"),
    "schedule with two schedule keys": (["inspect", "schedule={files}/twice.yaml"],
                                        "the key 'schedule' appears twice, on line"),
    "schedule with a word for its FID": (["sample", "schedule={files}/fid_word.yaml"],
                                         "score.value is 'abc'; it must be a finite number"),
    "schedule with a word for its sample count": (["sample", "schedule={files}/count_word.yaml"],
                                                  "score.n_samples is 'many'"),
    "schedule with sigma_min above sigma_max": (["sample", "schedule={files}/sigmas_swapped.yaml"],
                                                "sampler.sigma_min is 100.0 and "
                                                "sampler.sigma_max 80.0"),
    "schedule with an infinite sigma_max": (["sample", "schedule={files}/sigma_inf.yaml"],
                                            "sampler.sigma_max is inf"),
    "schedule with a word for rho": (["windows", "schedule={files}/rho_word.yaml"],
                                     "sampler.rho is 'seven'"),
    "schedule with an option its sampler lacks": (["sample", "schedule={files}/heun_churn.yaml"],
                                                  "sampler.options has 'S_churn', which heun "
                                                  "does not take"),
    "schedule with a word for an option": (["sample", "schedule={files}/churn_word.yaml"],
                                           "sampler.options.S_churn is 'lots'"),
    "schedule with a UniPC order of 5": (["sample", "schedule={files}/order5.yaml"],
                                         "sampler.options.order is 5"),
    "schedule with rising sigmas": (["sample", "schedule={files}/sigmas_rising.yaml"],
                                    "sampler.sigmas: noise levels must strictly decrease"),
    "schedule with an unknown profile": (["inspect", "schedule={files}/wavy.yaml"],
                                         "schedule.profile is 'wavy'"),
    "NaN skip.params": (["sample", "skip.params.rho_top=nan"], "skip.params.rho_top=nan"),
    "negative skip.params": (["inspect", "skip.params.rho_bottom=-1"],
                             "skip.params.rho_bottom=-1"),
    "skip.params not a number": (["inspect", "skip.params.rho_top=abc"], "skip.params.rho_top"),
    "search bounds above the hard range": (["sweep", "skip.space.rho_top.high=20"],
                                           "skip.space.rho_top.high=20"),
    # numbers outside what the math allows, words that are not booleans, empty paths
    "infinite sigma_max": (["sweep", "sampler.sigma_max=inf"], "sampler.sigma_max=inf"),
    "sigma_max beyond any network": (["sweep", "sampler.sigma_max=1e308"], "sampler.sigma_max"),
    "NaN sigma_min": (["sample", "sampler.sigma_min=nan"], "sampler.sigma_min=nan"),
    "infinite discretization rho": (["sweep", "sampler.rho=inf"], "sampler.rho=inf"),
    "listed sigma beyond any network": (["sweep", "sampler.discretization=list",
                                         "sampler.sigmas=[1e9,1]"], "sampler.sigmas"),
    "infinite churn": (["sweep", "sampler=edm_stochastic", "sampler.S_churn=inf"],
                       "sampler.S_churn=inf"),
    "a million sampler steps": (["sample", "sampler.steps=1000000"], "sampler.steps=1000000"),
    "a million search steps": (["sweep", "search.steps=[3,1000000]"], "search.steps"),
    "a million limit steps": (["sweep", "search.limit_steps=[1000000]"], "search.limit_steps"),
    "seed start at 2**64": (["sweep", "metric.seed_start=18446744073709551616"],
                            "metric.seed_start=18446744073709551616"),
    "final seeds past 2**63": (["sweep", "metric.final_seed_start=9223372036854775800"],
                               "metric.final_seed_start=9223372036854775800: with "
                               "metric.final_samples=30 the seeds reach"),
    "final seeds after search seeds past 2**63": (
        ["sweep", "metric.seed_start=9223372036854775000", "metric.n_samples=800"],
        "metric.final_samples=30: the final seeds follow the search's"),
    "report grid of a million images": (["report", "storage.url=sqlite:///{files}/study.db",
                                         "report.grid=1000000"], "report.grid=1000000"),
    "search seed at 2**64": (["sweep", "search.seed=18446744073709551616"], "search.seed"),
    "search seed a word": (["sweep", "search.seed=abc"], "search.seed='abc'"),
    "analyze seeds past 2**63": (["analyze", "analyze.seed_start=9223372036854775807"],
                                 "analyze.seed_start"),
    "more seed blocks than final images": (["sweep", "metric.final_samples=2"],
                                           "search.confirm_blocks=10"),
    "bound limit beyond the coefficient cap": (["sweep", "search.expand_bounds=true",
                                                "search.bound_limit.high=50"],
                                               "search.bound_limit.high=50"),
    "no failures allowed": (["sweep", "search.max_failures=0"], "search.max_failures=0"),
    "expand_bounds=no": (["sweep", "search.expand_bounds=no"], "search.expand_bounds='no'"),
    "expand_bounds a word": (["sweep", "search.expand_bounds=yes_please"],
                             "search.expand_bounds='yes_please'"),
    "warm_start a word": (["sweep", "search.warm_start=maybe"], "search.warm_start='maybe'"),
    "sample.score a word": (["sample", "sample.score=maybe"], "sample.score='maybe'"),
    "model setting not finite": (["inspect", "model=ldm", "model.path=README.md",
                                  "model.latent_scale=inf"], "model.latent_scale=inf"),
    "empty out_dir": (["sweep", "out_dir="], "out_dir=''"),
    "blank out_dir": (["export", "out_dir=' '"], "out_dir=' '"),
    "empty export_dir": (["sweep", "export_dir="], "export_dir=''"),
    "empty sample.dir": (["sample", "sample.dir="], "sample.dir=''"),
    "empty report.dir": (["report", "storage.url=sqlite:///{files}/study.db", "report.dir="],
                         "report.dir=''"),
    "empty W&B folder": (["sweep", "logger=wandb", "logger.dir="], "logger.dir=''"),
    "study name that climbs out": (["sweep", "search.study_name=../../escape"],
                                   "search.study_name='../../escape'"),
    "study name with a slash": (["export", "storage.url=sqlite:///{files}/study.db",
                                 "search.study_name=a/b"], "search.study_name='a/b'"),
    "study name of 101 characters": (["sweep", f"search.study_name={'x' * 101}"],
                                     "search.study_name="),
    "model name that makes a path": (["sweep", "model.name=../up"],
                                     "the default name '../up-heun-linear'"),
    "expand step infinite while expansion is off": (["sweep", "search.expand_step=inf"],
                                                    "search.expand_step=inf"),
    "a million grid points a parameter": (["sweep", "search=grid",
                                           "search.grid_points=1000000"],
                                          "search.grid_points=1000000"),
    "a grid too large to list": (["sweep", "search=grid", "skip=per_skip",
                                  "search.grid_points=20"],
                                 "makes a grid of 6.4e+07 points over 6 parameters"),
    "schedule whose study name climbs out": (["windows", "schedule={files}/climbing_study.yaml"],
                                             "its study.name '../../up' becomes the report"),
    # overrides a schedule file would silently win over
    "skip.params beside a schedule": (["sample", "schedule={files}/four.yaml",
                                       "skip.params.rho_top=0.5"],
                                      "skip.params.rho_top='0.5': schedule=FILE fixes skip"),
    "sampler.steps beside a schedule": (["sample", "schedule={files}/four.yaml",
                                         "sampler.steps=10"], "fixes sampler"),
    "sampler group beside a schedule": (["windows", "schedule={files}/four.yaml",
                                         "sampler=euler"], "fixes sampler"),
    # folders and files a command writes
    "export_dir under a file": (["sweep", "export_dir={files}/a_file/exports"], "export_dir="),
    "study file under a file": (["sweep", "storage.url=sqlite:///{files}/a_file/s.db"],
                                "not a folder"),
    "journal under a file": (["sweep", "storage.url=journal:///{files}/a_file/s.log"],
                             "not a folder"),
    "corrupt study database": (["sweep", "storage.url=sqlite:///{files}/corrupt.db"],
                               "not a readable SQLite database"),
    "study database that is text": (["sweep", "storage.url=sqlite:///{files}/text.db"],
                                    "not an SQLite database"),
    "database of another program": (["sweep", "storage.url=sqlite:///{files}/other.db"],
                                     "another program"),
    "study database that is a folder": (["sweep", "storage.url=sqlite:///{files}"],
                                        "is a folder"),
    # /proc takes no new file, even from root, whose permission bits all pass
    "study file where no file can be made": (["sweep", "storage.url=sqlite:////proc/s.db"],
                                             "/proc is not writable"),
    "journal where no file can be made": (["sweep", "storage.url=journal:////proc/a/s.log"],
                                          "/proc is not writable"),
    "out_dir where no file can be made": (["sweep", "out_dir=/proc/out"],
                                          "/proc is not writable"),
    "corrupt journal": (["export", "storage.url=journal:///{files}/corrupt.log"],
                        "not an Optuna journal"),
    "export from a corrupt database": (["export", "storage.url=sqlite:///{files}/corrupt.db"],
                                       "not a readable SQLite database"),
    "export into a file": (["export", "storage.url=sqlite:///{files}/study.db",
                            "export_dir={files}/a_file/x"], "export_dir="),
    "report from a text database": (["report", "storage.url=sqlite:///{files}/text.db"],
                                    "not an SQLite database"),
    "report into a file": (["report", "storage.url=sqlite:///{files}/study.db",
                            "report.dir={files}/a_file/r"], "report.dir="),
    "report grid below zero": (["report", "storage.url=sqlite:///{files}/study.db",
                                "report.grid=-1"], "report.grid"),
    "sample into a file": (["sample", "sample.dir={files}/a_file/s"], "sample.dir="),
    "sample no images": (["sample", "sample.n=0"], "sample.n=0"),
    "sample a negative grid": (["sample", "sample.grid=-1"], "sample.grid=-1"),
    "refstats of a missing reference": (["refstats", "metric.reference=/no/such/folder"],
                                        "metric.reference"),
    "refstats with out_dir under a file": (["refstats", "out_dir={files}/a_file/out"],
                                           "out_dir="),
    "inspect with an unknown device": (["inspect", "device=tpu"], "device='tpu'"),
    # the dashboard
    "dashboard port in use": (["dashboard", "storage.url=sqlite:///{files}/study.db",
                               "dashboard.port={port}"], "is in use"),
    "dashboard on an unknown host": (["dashboard", "storage.url=sqlite:///{files}/study.db",
                                      "dashboard.host=no.such.host.invalid"], "unknown host"),
    "dashboard port out of range": (["dashboard", "storage.url=sqlite:///{files}/study.db",
                                     "dashboard.port=70000"], "dashboard.port=70000"),
    "dashboard on a corrupt database": (["dashboard", "storage.url=sqlite:///{files}/corrupt.db"],
                                        "not a readable SQLite database"),
    # train-toy
    "train-toy with zero steps": (["train-toy", "diffusion.steps=0"], "diffusion.steps=0"),
    "train-toy assets under a file": (["train-toy", "assets_dir={files}/a_file/assets"],
                                      "assets_dir="),
    "train-toy docs under a file": (["train-toy", "docs_dir={files}/a_file/docs"], "docs_dir="),
    "train-toy unknown key": (["train-toy", "diffusion.stepz=3"], "diffusion.stepz"),
    "train-toy batch size zero": (["train-toy", "diffusion.batch_size=0"],
                                  "diffusion.batch_size=0"),
    "train-toy fractional batch size": (["train-toy", "classifier.batch_size=1.5"],
                                        "classifier.batch_size=1.5"),
    "train-toy no held-out share": (["train-toy", "classifier.test_fraction=0"],
                                    "classifier.test_fraction=0: must be a number in (0, 1)"),
    "train-toy all held out": (["train-toy", "classifier.test_fraction=1.0"],
                               "classifier.test_fraction=1.0"),
    "train-toy zero learning rate": (["train-toy", "diffusion.lr=0"], "diffusion.lr=0"),
    "train-toy NaN learning rate": (["train-toy", "classifier.lr=nan"], "classifier.lr=nan"),
    "train-toy EMA decay of one": (["train-toy", "diffusion.ema_decay=1.0"],
                                   "diffusion.ema_decay=1.0: must be a number in [0, 1)"),
    "train-toy empty channel_mult": (["train-toy", "diffusion.channel_mult=[]"],
                                     "diffusion.channel_mult=[]"),
    "train-toy zero in channel_mult": (["train-toy", "diffusion.channel_mult=[1,0]"],
                                       "diffusion.channel_mult=[1, 0]"),
    "train-toy no model channels": (["train-toy", "diffusion.model_channels=0"],
                                    "diffusion.model_channels=0"),
    "train-toy negative blocks per level": (["train-toy", "diffusion.blocks_per_level=-1"],
                                            "diffusion.blocks_per_level=-1"),
    "train-toy zero sigma_data": (["train-toy", "diffusion.sigma_data=0"],
                                  "diffusion.sigma_data=0"),
    "train-toy zero P_std": (["train-toy", "diffusion.P_std=0"], "diffusion.P_std=0"),
    "train-toy infinite P_mean": (["train-toy", "diffusion.P_mean=inf"], "diffusion.P_mean=inf"),
    "train-toy log every zero steps": (["train-toy", "diffusion.log_every=0"],
                                       "diffusion.log_every=0"),
    "train-toy negative shift": (["train-toy", "classifier.max_shift=-1"],
                                 "classifier.max_shift=-1"),
    "train-toy empty grid": (["train-toy", "grid.n=0"], "grid.n=0"),
    "train-toy fractional seed": (["train-toy", "seed=1.5"], "seed=1.5"),
    "train-toy seed beyond torch": (["train-toy", "seed=18446744073709551616"],
                                    "seed=18446744073709551616"),
    "train-toy diffusion maybe": (["train-toy", "diffusion.enabled=maybe"],
                                  "diffusion.enabled='maybe'"),
    "train-toy classifier no": (["train-toy", "classifier.enabled=no"],
                                "classifier.enabled='no'"),
    "train-toy empty out_dir": (["train-toy", "out_dir=''"], "out_dir='': must be a non-empty"),
    "train-toy assets null": (["train-toy", "assets_dir=null"], "assets_dir=package"),
    # Hydra's flags and the shell
    "multirun with a bad value": (["sweep", "--multirun", "search.n_trials=many"],
                                  "search.n_trials"),
    "multirun with export_dir under a file": (["sweep", "-m", "search.worker=0,1",
                                               "export_dir={files}/a_file/x"], "export_dir="),
    "multirun with one bad job": (["sweep", "-m", "search.n_trials=2,0"],
                                  "search.n_trials=0"),
    "multirun with a bad sweep": (["sweep", "-m", "search.worker=range(a)"], "range"),
    "printing the config of an unknown key": (["sweep", "--cfg", "job", "search.n_trails=3"],
                                              "search.n_trails"),
    "out_dir with an unquoted space": (["sweep", "out_dir={files}/my", "dir"],
                                       "quote the whole override: 'out_dir="),
    "a word that is no override": (["export", "now"], "'now' is not an override"),
}


def case_args(case: str, tiny_overrides: list[str], files: Path, port: int) -> list[str]:
    """The command line of a BAD case, with the tiny overrides its config group accepts."""
    args = [a.format(files=files, port=port) for a in BAD[case][0]]
    if any(a.startswith("model=") for a in args):  # the digits weights key is digits' own
        tiny_overrides = [o for o in tiny_overrides if not o.startswith("model.")]
    if "metric=fid" in args:  # nor the digits classifier's in the inception group
        tiny_overrides = [o for o in tiny_overrides if not o.startswith("metric.weights")]
    if args[0] == "train-toy":  # it writes under out_dir alone
        tiny_overrides = [o for o in tiny_overrides if o.startswith("out_dir=")]
    given = {a.split("=", 1)[0] for a in args}  # the case's own value of a key wins
    return [*args, *(o for o in tiny_overrides if o.split("=", 1)[0] not in given)]


def write_bad_weights(folder: Path, tiny: dict[str, Path]) -> None:
    """The tiny networks' files, and broken copies: metadata, tensors, bytes."""
    model, classifier = (load_file(str(tiny[k])) for k in ("model", "classifier"))
    with safe_open(str(tiny["model"]), framework="pt") as f:
        config = f.metadata()["config"]
    with safe_open(str(tiny["classifier"]), framework="pt") as f:
        classifier_config = f.metadata()["config"]

    def write(name: str, tensors: dict, metadata: dict | None = None, **changed) -> None:
        save_file({**tensors, **changed}, str(folder / name), metadata=metadata)

    for name in ("model", "classifier"):
        (folder / f"{name}.safetensors").write_bytes(tiny[name].read_bytes())
    write("no_config.safetensors", model, {"sigma_data": "0.5"})
    write("config_not_json.safetensors", model, {"config": "{channels: 8"})
    write("config_fields.safetensors", model, {"config": classifier_config})
    write("sigma_data_word.safetensors", model, {"config": config, "sigma_data": "abc"})
    write("foreign_tensor.safetensors", model, {"config": config}, **{
        "extra.weight": torch.zeros(2)})
    write("extra_tensor.safetensors", model, {"config": config}, **{
        "enc.9.weight": torch.zeros(2)})
    write("misshapen.safetensors", model, {"config": config}, **{
        "conv_in.weight": torch.zeros(4, 1, 3, 3)})
    write("missing_tensor.safetensors",
          {k: v for k, v in model.items() if k != "conv_in.weight"}, {"config": config})
    write("classifier_no_config.safetensors", classifier)
    write("classifier_misshapen.safetensors", classifier, {"config": classifier_config}, **{
        "head.weight": torch.zeros(3, 16)})


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, tiny_weights) -> Path:
    """Broken schedules, weights, databases and journals, a regular file, a good study file."""
    folder = tmp_path_factory.mktemp("bad")
    good = {"format": FORMAT, "model": {"name": "digits", "sha256": "0" * 64},
            "sampler": {"name": "heun", "steps": 2, "sigma_min": 0.002, "sigma_max": 80.0,
                        "rho": 7.0, "options": {}, "sigmas": None, "nfe": 3},
            "schedule": SkipSchedule((0.9,) * 6).to_dict(),
            "score": {"value": 1.0, "n_samples": 24, "seeds": {"start": 0, "stop": 24}},
            "study": {}}

    def variant(name: str, edit) -> None:
        record = copy.deepcopy(good)
        edit(record)
        (folder / name).write_text(yaml.safe_dump(record))

    def set_rho(i, value):
        return lambda r: r["schedule"]["coefficients"].__setitem__(i, value)

    variant("nan.yaml", set_rho(2, float("nan")))
    variant("negative.yaml", set_rho(2, -5.0))
    variant("huge.yaml", set_rho(0, 1e9))
    variant("word.yaml", set_rho(0, "abc"))
    variant("four.yaml", lambda r: r["schedule"].update(coefficients=[0.9] * 4))
    variant("no_seeds.yaml", lambda r: r["score"].pop("seeds"))
    variant("no_steps.yaml", lambda r: r["sampler"].pop("steps"))
    variant("rk9.yaml", lambda r: r["sampler"].update(name="rk9"))
    variant("pareto.yaml", lambda r: r.update(format="skipsearch-pareto/1"))
    variant("other_weights.yaml", lambda r: r["model"].update(sha256="0123456789ab" * 5))
    tiny_sha = file_sha256(tiny_weights["model"])  # a schedule that fits the tiny model
    variant("climbing_study.yaml", lambda r: (r["model"].update(sha256=tiny_sha),
                                              r["study"].update(name="../../up")))
    variant("fid_word.yaml", lambda r: r["score"].update(value="abc"))
    variant("count_word.yaml", lambda r: r["score"].update(n_samples="many"))
    variant("sigmas_swapped.yaml", lambda r: r["sampler"].update(sigma_min=100.0))
    variant("sigma_inf.yaml", lambda r: r["sampler"].update(sigma_max=float("inf")))
    variant("rho_word.yaml", lambda r: r["sampler"].update(rho="seven"))
    variant("heun_churn.yaml", lambda r: r["sampler"].update(options={"S_churn": 3.0}))
    variant("churn_word.yaml", lambda r: r["sampler"].update(
        name="edm_stochastic", options={"S_churn": "lots", "S_min": 0.0, "S_max": 1e9,
                                        "S_noise": 1.0}))
    variant("order5.yaml", lambda r: r["sampler"].update(name="unipc", options={"order": 5}))
    variant("sigmas_rising.yaml", lambda r: r["sampler"].update(sigmas=[1.0, 5.0]))
    variant("wavy.yaml", lambda r: r["schedule"].update(profile="wavy"))
    twice = copy.deepcopy(good)
    twice["schedule"].update(coefficients=[1.0] * 6)
    (folder / "twice.yaml").write_text(  # PyYAML alone would keep the second silently
        yaml.safe_dump(good) + yaml.safe_dump({"schedule": twice["schedule"]}))
    write_bad_weights(folder, tiny_weights)
    (folder / "binary.yaml").write_bytes(bytes(range(256)) * 4)
    (folder / "empty.yaml").write_text("")
    (folder / "exports").mkdir()
    (folder / "a_file").write_text("a file, not a folder")
    (folder / "corrupt.db").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 20)
    (folder / "text.db").write_text("hello, not a database\n")
    with closing(sqlite3.connect(folder / "other.db")) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.commit()
    (folder / "corrupt.log").write_text("{not json\n")
    optuna.create_study(study_name="digits-heun-linear", storage=f"sqlite:///{folder}/study.db")
    return folder


@pytest.fixture(scope="module")
def busy_port():
    """A loopback port with a listening socket on it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def run_in_process(argv: list[str]) -> int:
    """What ``skipsearch ARGV`` does up to its first failure, without a new interpreter.

    The same up-front check as the CLI (``precheck_args``); if that passes, the command's
    runner on the composed config, with the CLI's handling of failures (``guarded``).
    """
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        return main(argv)
    code = precheck_args(command, args)
    if code:
        return code
    cfg = compose_config(args, COMMANDS[command].config)
    return guarded(lambda: runner_of(command)(cfg))


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_one_line_with_exit_code_2(case, tiny_overrides, tmp_path, bad_files,
                                                busy_port, capsys):
    argv = case_args(case, tiny_overrides, bad_files, busy_port)
    code = run_in_process(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skipsearch: error: "), err
    assert BAD[case][1] in lines[0] and "s3cret" not in err  # never a password
    assert not (tmp_path / "out").exists()  # nothing written
    assert not (bad_files / "my").exists()


# The CLI contract in a real interpreter: exit code 2, one line on stderr, nothing written
# (a check that needs the model runs after Hydra starts its log folder, before any output).
CONTRACT = ["unknown key", "schedule with a NaN coefficient", "multirun with one bad job",
            "out_dir with an unquoted space", "schedule with 4 coefficients for 6 skips"]


@pytest.mark.parametrize("case", CONTRACT)
def test_the_cli_contract_for_bad_input(case, tiny_overrides, tmp_path, bad_files, busy_port):
    result = run_cli_process(*case_args(case, tiny_overrides, bad_files, busy_port))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert BAD[case][1] in lines[0]
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert all("logs" in p.parts for p in written), written  # at most Hydra's log of the run
    assert not (tmp_path / "out" / "samples").exists()


def test_unwritable_output_directory(tiny_overrides, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_cli("sweep", *tiny_overrides, f"out_dir={blocker}/out")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("skipsearch: error: out_dir=")


def test_searching_levels_windows_and_profiles(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    result = run_cli("sweep", *tiny_overrides, "skip=per_level", "search.steps=[3]",
                     "search.n_trials=4", "search.n_startup_trials=1",
                     "skip.window_space={low: 0.1, high: 20}",
                     "skip.profiles=[constant,rising,falling]")
    assert result.returncode == 0, result.stderr
    study = load_sweep(name="digits-heun-per_level",
                       storage=f"sqlite:///{out}/studies.db")
    trial = study.trials[-1]
    assert len({t.value for t in study.trials}) > 1  # windows cover sigma = 2.5 at times
    assert {"rho_level0", "rho_level1", "rho_level2", "sigma_lo", "sigma_hi", "profile"} <= \
        set(trial.params)
    exported = out / "exports" / "digits-heun-per_level" / "best.yaml"
    record = yaml.safe_load(exported.read_text())
    assert record["schedule"]["profile"] in ("constant", "rising", "falling")
    assert "window" in record["schedule"]
    sample = run_cli("sample", *tiny_overrides, f"schedule={exported}")
    assert sample.returncode == 0, sample.stderr
    fid, exported_fid = map(float, re.search(r"FID (\S+) \(exported: (\S+)\)",
                                             sample.stdout).groups())
    assert fid == pytest.approx(exported_fid, rel=1e-4)


def test_stochastic_sampler_round_trip(tiny_overrides, tmp_path):
    out = tmp_path / "out"
    sweep = run_cli("sweep", *tiny_overrides, "sampler=edm_stochastic", "sampler.S_churn=10",
                    "search.steps=[3]", "search.n_trials=2")
    assert sweep.returncode == 0, sweep.stderr
    best = out / "exports" / "digits-edm_stochastic-linear" / "best.yaml"
    record = yaml.safe_load(best.read_text())
    assert record["sampler"]["options"]["S_churn"] == 10.0 and record["sampler"]["nfe"] == 5
    sample = run_cli("sample", *tiny_overrides, f"schedule={best}")
    assert sample.returncode == 0, sample.stderr
    fid, exported = map(float, re.search(r"FID (\S+) \(exported: (\S+)\)", sample.stdout).groups())
    assert fid == pytest.approx(exported, rel=1e-4)


@pytest.mark.parametrize("sampler, nfe", [("euler", 4), ("dpmpp_2m", 4), ("heun", 7)])
def test_a_given_list_of_sigmas_sets_the_steps(sampler, nfe, tiny_overrides, tmp_path):
    result = run_cli("sweep", *tiny_overrides, f"sampler={sampler}",
                     "sampler.discretization=list", "sampler.sigmas=[80,5,0.5,0.01]",
                     "search.n_trials=2")
    assert result.returncode == 0, result.stderr
    study = load_sweep(name=f"digits-{sampler}-linear",
                       storage=f"sqlite:///{tmp_path}/out/studies.db")
    assert {t.user_attrs["nfe"] for t in study.trials} == {nfe}


@pytest.mark.parametrize("sampler", ["cmaes", "gp", "grid", "nsga2", "random"])
def test_every_optuna_sampler_is_seeded(sampler, tiny_overrides, tmp_path):
    params = []
    for run in ("a", "b"):
        overrides = [o.replace(str(tmp_path / "out"), str(tmp_path / run))
                     for o in tiny_overrides]
        extra = {"grid": ["search.grid_points=2", "skip.space.rho_top={low:0.6,high:1.0}",
                          "skip.space.rho_bottom={low:0.4,high:0.9}"],
                 "nsga2": ["search.population_size=2"]}
        result = run_cli("sweep", *overrides, f"search={sampler}", "search.steps=[2]",
                         "search.n_trials=4", "search.n_startup_trials=1",
                         *extra.get(sampler, []))
        assert result.returncode == 0, result.stderr
        study = load_sweep(name="digits-heun-linear",
                           storage=f"sqlite:///{tmp_path / run}/studies.db")
        assert len(study.trials) == 4
        params.append([t.params for t in study.trials])
    assert params[0] == params[1]
    assert len({tuple(sorted(p.items())) for p in params[0]}) == 4  # four different schedules
    if sampler == "grid":  # 2 points per coefficient: the ends of its bounds
        assert {p["rho_top"] for p in params[0][1:]} <= {0.6, 1.0}
        assert {p["rho_bottom"] for p in params[0][1:]} <= {0.4, 0.9}


@pytest.mark.parametrize("command", ["export", "report"])
def test_no_such_study_names_the_sweeps_there(command, tiny_overrides, tmp_path, capsys):
    """A mistyped study name: one line listing the sweeps the storage holds."""
    folder = tmp_path / "store"
    folder.mkdir()
    url = f"sqlite:///{folder / 'studies.db'}"
    for sweep in ("alpha", "beta"):
        cell = optuna.create_study(study_name=f"{sweep}/heun-steps2", storage=url)
        cell.set_user_attr(GROUP_ATTR, sweep)
    code = run_in_process([command, *tiny_overrides, f"storage.url={url}",
                           "search.study_name=alpah"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "search.study_name='alpah': no such study" in err[0]
    assert "its sweeps: alpha, beta" in err[0]
