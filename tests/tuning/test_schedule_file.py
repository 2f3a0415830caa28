"""Reading schedule files: strict YAML, and every field a reader uses checked on the way in."""

from __future__ import annotations

import copy
import math

import pytest
import yaml

from skipsearch.configuration.errors import ConfigError
from skipsearch.tuning.schedule import SkipSchedule
from skipsearch.tuning.schedule_file import (
    FORMAT,
    DuplicateKeyError,
    load_schedule,
    read_yaml,
    schedule_file_problem,
)

SECTIONS = ("model", "sampler", "score")
GOOD = {"format": FORMAT, "model": {"name": "digits", "sha256": "ab" * 32},
        "sampler": {"name": "heun", "steps": 2, "sigma_min": 0.002, "sigma_max": 80.0,
                    "rho": 7.0, "options": {}, "sigmas": None, "nfe": 3},
        "schedule": SkipSchedule((0.9,) * 6).to_dict(),
        "score": {"value": 1.5, "n_samples": 24, "seeds": {"start": 0, "stop": 24}},
        "study": {"name": "digits-heun-linear"}}


def edited(**sections) -> dict:
    """GOOD with some keys of its sections replaced."""
    record = copy.deepcopy(GOOD)
    for section, values in sections.items():
        record[section].update(values)
    return record


def test_a_key_given_twice_names_the_key_and_both_lines():
    text = "format: x\nsampler:\n  steps: 2\n  rho: 7\n  steps: 3\n"
    with pytest.raises(DuplicateKeyError, match="the key 'steps' appears twice, on line 3 "
                                                "and on line 5"):
        read_yaml(text)
    with pytest.raises(DuplicateKeyError, match="'a' appears twice, on line 1 and on line 1"):
        read_yaml("{a: 1, b: 2, a: 3}\n")
    assert yaml.safe_load(text)["sampler"]["steps"] == 3  # what PyYAML alone would keep


def test_strict_yaml_reads_what_safe_yaml_reads():
    text = yaml.safe_dump(GOOD) + "base: &b {a: 1, b: 2}\nmerged: {<<: *b, a: 5}\n"
    assert read_yaml(text) == yaml.safe_load(text)
    assert read_yaml(text)["merged"] == {"a": 5, "b": 2}  # a merge may be overridden


def test_a_file_with_a_section_twice_is_refused_before_use(tmp_path):
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump(GOOD) + yaml.safe_dump({"schedule": GOOD["schedule"]}))
    with pytest.raises(ConfigError) as err:
        load_schedule(path)
    assert err.value.key == "schedule" and err.value.value == str(path)
    assert "the key 'schedule' appears twice" in err.value.fix


def test_an_exported_record_passes():
    assert schedule_file_problem(GOOD, SECTIONS) is None
    churn = {"S_churn": 40.0, "S_min": 0.05, "S_max": math.inf, "S_noise": 1.003}
    assert schedule_file_problem(edited(sampler={"name": "edm_stochastic", "options": churn}),
                                 SECTIONS) is None  # EDM's S_max = inf
    listed = edited(sampler={"sigmas": [80.0, 1.0, 0.1], "steps": 3})
    assert schedule_file_problem(listed, SECTIONS) is None


@pytest.mark.parametrize("record, why", [
    (edited(score={"value": "abc"}), "score.value is 'abc'; it must be a finite number"),
    (edited(score={"value": math.nan}), "score.value is nan"),
    (edited(score={"n_samples": True}), "score.n_samples is True"),
    (edited(sampler={"sigma_min": 90.0}), "sampler.sigma_min is 90.0 and sampler.sigma_max 80.0"),
    (edited(sampler={"sigma_min": 0.0}), "sampler.sigma_min is 0.0; it must be a finite"),
    (edited(sampler={"rho": "7"}), "sampler.rho is '7'"),
    (edited(sampler={"steps": 2.0}), "sampler.steps is 2.0"),
    (edited(sampler={"options": {"S_churn": 1.0}}), "which heun does not take"),
    (edited(sampler={"name": "unipc", "options": {"order": 4}}), "sampler.options.order is 4"),
    (edited(sampler={"name": "edm_stochastic", "options": {"S_churn": math.inf}}),
     "sampler.options.S_churn is inf"),
    (edited(sampler={"name": "edm_stochastic", "options": {"S_min": 2.0, "S_max": 1.0}}),
     "sampler.options.S_min is 2.0, above sampler.options.S_max 1.0"),
    (edited(sampler={"sigmas": [0.1, 1.0]}), "noise levels must strictly decrease"),
    (edited(sampler={"sigmas": [80.0, 1.0, 0.1]}), "lists 3 noise levels and sampler.steps is 2"),
    (edited(schedule={"window": [5.0, 1.0]}), "schedule.window is [5.0, 1.0]"),
    (edited(schedule={"profile_range": [0.0, 80.0]}), "schedule.profile_range"),
    (edited(schedule={"params": {"rho_top": "high"}}), "schedule.params.rho_top is 'high'"),
    (edited(schedule={"guidance_scale": 0.5}), "schedule.guidance_scale is 0.5; it must be"),
    (edited(schedule={"guidance_scale": True}), "schedule.guidance_scale is True"),
    (edited(schedule={"freeu": {"b1": 1.1, "b2": 1.2, "s1": 0.9}}), "schedule.freeu is"),
    (edited(schedule={"freeu": {"b1": 0.0, "b2": 1.2, "s1": 0.9, "s2": 0.2}}),
     "schedule.freeu.b1 is 0.0"),
    (edited(schedule={"freeu": {"b1": 1.1, "b2": 1.2, "s1": -1, "s2": 0.2}}),
     "schedule.freeu.s1 is -1"),
    (edited(model={"sha256": 12}), "model.sha256 is 12"),
    ({**GOOD, "study": "digits"}, "study is 'digits', not a mapping"),
])
def test_each_field_a_reader_uses_is_checked(record, why):
    assert why in schedule_file_problem(record, SECTIONS)


def test_sections_a_reader_skips_are_not_checked():
    """``skipsearch.apply`` reads only the schedule: a sampler it never uses is not its concern."""
    record = edited(sampler={"sigma_min": 90.0})
    assert schedule_file_problem(record) is None
    assert "sampler.sigma_min" in schedule_file_problem(record, ("sampler",))


def test_a_file_of_format_1_still_loads_with_its_fid_as_the_value(tmp_path):
    """Format /1 kept one FID under score.fid; readers take it as the score of that metric."""
    old = copy.deepcopy(GOOD)
    old["format"] = "skipsearch-schedule/1"
    old["score"] = {"fid": 2.25, "n_samples": 24, "seeds": {"start": 0, "stop": 24},
                    "metric": "fid", "feature_extractor": "digits-classifier"}
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(old))
    exported = load_schedule(path, sections=SECTIONS)
    assert exported.value == 2.25 and exported.metric == "digits_fid"
    old["score"].pop("fid")
    assert "the key score.fid is missing" in schedule_file_problem(old, SECTIONS)
    old["format"] = "skipsearch-schedule/9"
    assert "not skipsearch-schedule/1 or skipsearch-schedule/2" in schedule_file_problem(old)


def test_a_file_of_format_2_names_its_metric(tmp_path):
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(edited(score={"metric": "fd_dinov2", "value": 3.5})))
    exported = load_schedule(path, sections=SECTIONS)
    assert (exported.metric, exported.value) == ("fd_dinov2", 3.5)


def test_guidance_and_freeu_travel_through_a_file_and_are_absent_when_unset(tmp_path):
    freeu = {"b1": 1.3, "b2": 1.4, "s1": 0.9, "s2": 0.2}
    schedule = SkipSchedule((0.9, 0.8), guidance_scale=5.0, freeu=freeu)
    assert SkipSchedule.from_dict(schedule.to_dict()) == schedule
    assert schedule.uses_freeu and not schedule.is_identity
    plain = SkipSchedule((1.0, 1.0)).to_dict()
    assert "guidance_scale" not in plain and "freeu" not in plain  # files as before
    assert SkipSchedule((1.0, 1.0), freeu=dict.fromkeys(freeu, 1.0)).is_identity
