"""The metric registry: every entry resolves, and every metric has its config file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from skipsearch.metrics.build import imported
from skipsearch.metrics.registry import METRICS, NETWORKS, STATISTICS, direction, label
from skipsearch.metrics.statistic import Statistic

CONF = Path(__file__).resolve().parents[2] / "conf" / "metric"


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_each_network_names_a_loader_and_a_key_the_config_holds(name):
    network = NETWORKS[name]
    assert callable(imported(network.loader))
    shared = yaml.safe_load((CONF / "_files.yaml").read_text())
    assert network.key.removeprefix("metric.") in shared


@pytest.mark.parametrize("name", sorted(STATISTICS))
def test_each_statistic_names_a_statistic_class(name):
    cls = imported(STATISTICS[name].cls)
    assert issubclass(cls, Statistic) and cls.needs == STATISTICS[name].needs


@pytest.mark.parametrize("name", sorted(METRICS))
def test_each_metric_has_its_config_file_and_a_direction_its_statistic_agrees_with(name):
    definition = METRICS[name]
    assert definition.network in NETWORKS and definition.statistic in STATISTICS
    cls = imported(STATISTICS[definition.statistic].cls)
    assert cls.higher_is_better == definition.higher_is_better
    assert direction(name) == ("maximize" if definition.higher_is_better else "minimize")
    conf = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    assert conf["name"] == name and "_files" in conf["defaults"]
    assert label(name) == definition.label


def test_every_metric_file_is_a_registered_metric():
    files = {p.stem for p in CONF.glob("*.yaml") if not p.stem.startswith("_")}
    assert files == set(METRICS)
    assert label("not_registered") == "not_registered" and direction("nfe") == "minimize"
