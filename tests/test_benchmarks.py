"""The benchmark scripts still run against the code (a few images each; no timing asserted)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    """A script of benchmarks/ as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_search_budget_benchmark_runs_every_search(tmp_path, monkeypatch):
    out = tmp_path / "budget.json"
    monkeypatch.setattr(sys, "argv", ["search_budget.py", "--skip", "per_skip", "--n", "20",
                                      "--budget", "60", "--seeds", "0", "--out", str(out)])
    load("search_budget").main()
    result = json.loads(out.read_text())
    methods = {r["method"] for r in result["runs"]}
    assert {"TPE + successive halving", "random", "Sobol design"} <= methods
    assert any(m.startswith("grid") for m in methods)
    for run in result["runs"]:  # no search spends more than its budget
        assert run["log"] and run["log"][-1]["images"] <= 60
    fids = [e["fid"] for r in result["runs"] for e in r["log"] if e["complete"]]
    assert result["best_fid"] == min(fids) and result["target_fid"] == 1.02 * min(fids)
