"""Two sweep workers as SLURM jobs through Hydra's submitit launcher, on one Journal study.

Needs a running SLURM cluster (``.ci/slurm`` starts a one-node one from Debian's packages:
munge, slurmctld and slurmd, 2 CPUs, no GPU); skipped where none answers.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import time
import uuid

import pytest
from omegaconf import OmegaConf

from skipsearch.search.group import load_sweep
from skipsearch.search.study import make_storage
from tests.conftest import run_cli_process
from tests.search.test_workers import check_no_trial_lost_or_repeated


def slurm_missing() -> str | None:
    """Why no SLURM job can be submitted here; None when a controller answers."""
    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        return "hydra-submitit-launcher is not installed (pip install -e '.[slurm]')"
    if any(shutil.which(c) is None for c in ("sbatch", "squeue", "scontrol")):
        return "no SLURM commands on PATH (.ci/slurm installs and starts a one-node cluster)"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=30)
    if ping.returncode != 0 or "UP" not in ping.stdout:
        return "no SLURM controller is running (.ci/slurm starts a one-node cluster)"
    return None


N_TRIALS = 6
pytestmark = pytest.mark.skipif(slurm_missing() is not None, reason=str(slurm_missing()))


@pytest.fixture(scope="module")
def slurm_sweep(tiny_weights, tmp_path_factory):
    """Two workers submitted as one SLURM array; (the CLI's result, log folder, sweep, name)."""
    tmp_path = tmp_path_factory.mktemp("slurm")
    name = f"skipsearch-test-{uuid.uuid4().hex[:8]}"  # this test's jobs, apart from others
    url = f"journal:///{tmp_path / 'study.log'}"
    result = run_cli_process(  # the SLURM jobs run the CLI's own task function
        "sweep", "--multirun", "sweeps=[digits,slurm]", "search.worker=0,1",
        f"model.weights={tiny_weights['model']}", f"metric.weights={tiny_weights['classifier']}",
        f"out_dir={tmp_path / 'out'}", "metric.n_samples=24", "batch_size=12", "logger=none",
        f"storage.url={url}", "search.steps=[2,3]", f"search.n_trials={N_TRIALS}",
        "search.n_startup_trials=1", "search.confirm_top_k=0", "device=cpu",
        # the preset asks for a GPU node; this cluster has 2 CPUs and no GPU
        "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=null", "hydra.launcher.timeout_min=10",
        f"hydra.launcher.name={name}")
    sweep = None
    if result.returncode == 0:
        storage = make_storage(OmegaConf.create({"url": url, "heartbeat_interval": 60,
                                                 "grace_period": 180, "max_retry": 2}))
        sweep = load_sweep(storage, "digits-heun-linear")
    return result, tmp_path / "out" / "logs" / "sweep-multirun", sweep, name


def test_two_slurm_jobs_run_workers_on_one_study(slurm_sweep):
    result, logs, _, name = slurm_sweep
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in logs.glob("*/[0-9]*") if p.is_dir()) == ["0", "1"]
    job_logs = list(logs.glob("*/.submitit/*/*_log.out"))
    assert len(job_logs) == 2  # two SLURM jobs (one array, two tasks) ran
    assert queued(name) == ""  # nothing left queued (once SLURM has ended the finished jobs)


def queued(name: str, wait: float = 30.0) -> str:
    """What ``squeue`` lists of jobs ``name``, polled until empty or ``wait`` seconds passed.

    A job that has handed back its result may show as running for a moment longer.
    """
    deadline = time.monotonic() + wait
    while True:
        queue = subprocess.run(["squeue", "-h", "-n", name], capture_output=True, text=True,
                               timeout=30)
        assert queue.returncode == 0, queue.stderr
        if not queue.stdout.strip() or time.monotonic() > deadline:
            return queue.stdout.strip()
        time.sleep(1.0)


def test_slurm_workers_draw_each_trial_once_and_stop_at_the_count(slurm_sweep):
    result, _, sweep, _ = slurm_sweep
    assert result.returncode == 0, result.stderr[-3000:]
    # Each of the two cells holds exactly N_TRIALS finished trials, none drawn twice.
    check_no_trial_lost_or_repeated(sweep, per_cell=N_TRIALS)
