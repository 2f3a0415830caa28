"""The ``metric`` group: feature network, reference set and the seeds scores use (torch-free)."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..configuration.errors import ConfigError, check
from ..configuration.keys import get_bool, get_choice, get_int
from ..execution.seed_range import SEED_LIMIT, SeedRange
from ..models.prompts import is_prompt_set, listed_images
from .registry import METRICS, REFERENCE_NEEDS, MetricDef, NetworkDef, network_of

REVERSAL_RULES = ("drop", "keep")


@dataclass(frozen=True)
class MetricSettings:
    """How scores are measured: the search metric, the confirmation's, reference and seeds."""

    name: str
    reference: str
    search: SeedRange
    final: SeedRange
    fid_infinity: bool = False
    confirm: tuple[str, ...] = ()
    on_reversal: str = "drop"
    #: feature network name -> its weights file (None: the bundled one)
    files: Mapping[str, Path | None] = field(default_factory=dict)

    @property
    def definition(self) -> MetricDef:
        """The registered search metric."""
        return METRICS[self.name]

    def used(self, objectives: Sequence[str] = (), confirming: bool = True) -> tuple[str, ...]:
        """Every metric a run scores: the search metric, other objectives, then (when it
        confirms) ``metric.confirm``'s."""
        names = [self.name, *(o for o in objectives if o in METRICS),
                 *(self.confirm if confirming else ())]
        return tuple(dict.fromkeys(names))

    @classmethod
    def from_config(cls, cfg: DictConfig, scored: bool = True,
                    objectives: Sequence[str] = (), confirming: bool = False
                    ) -> MetricSettings:
        """The checked ``metric`` group; with ``scored`` the files it needs must exist too.

        Those are the files of the search metric, of other ``objectives`` and, when
        ``confirming``, of ``metric.confirm``.
        """
        name = get_choice(cfg, "metric.name", tuple(METRICS))
        confirm = confirm_list(cfg, name)
        raw_reference = OmegaConf.select(cfg, "metric.reference", default=None,
                                         throw_on_missing=False)
        raw_reference = None if raw_reference == "???" else raw_reference
        reference = "" if raw_reference is None else str(raw_reference)
        scored_names = [name, *(o for o in objectives if o in METRICS)]
        used = tuple(dict.fromkeys([*scored_names, *(confirm if confirming else ())]))
        files: dict[str, Path | None] = {}
        if scored:
            files = {network_of(m).name: network_file(cfg, network_of(m)) for m in used}
            needing = [m for m in used if REFERENCE_NEEDS[METRICS[m].statistic] != "none"]
            if not reference and not needing:
                return cls(name, reference, *scored_seeds(cfg), confirm,
                           reversal_rule(cfg), files)
            check(reference == "digits" or (bool(reference) and Path(reference).exists()),
                  "metric.reference", raw_reference,
                  f"{(needing or [name])[0]} needs reference data; give digits, a folder or "
                  "zip of images, an npz of uint8 images, a .csv or .jsonl prompt set listing "
                  "images, an npz of Inception mu/sigma (EDM's imagenet-64x64.npz) or an EDM2 "
                  "reference .pkl")
            if Path(reference).is_file():
                check_reference_file(Path(reference))
            check_reference_serves(reference, used)
        return cls(name, reference, *scored_seeds(cfg), confirm, reversal_rule(cfg), files)


def scored_seeds(cfg: DictConfig) -> tuple[SeedRange, SeedRange, bool]:
    """The search's seeds, the final score's and whether FID-infinity is asked for."""
    search = seed_range(cfg, "metric.seed_start", "metric.n_samples")
    infinity = get_bool(cfg, "metric.fid_infinity")
    name = OmegaConf.select(cfg, "metric.name")
    check(not infinity or METRICS[name].statistic == "frechet", "metric.fid_infinity",
          infinity, f"extrapolates a Frechet distance; {name} is not one: set it false")
    return search, final_range(cfg, search), infinity


def reversal_rule(cfg: DictConfig) -> str:
    """``metric.on_reversal``: what a schedule worse on a confirm metric may still be."""
    rule = OmegaConf.select(cfg, "metric.on_reversal", default="drop")
    check(rule in REVERSAL_RULES, "metric.on_reversal", rule,
          "drop: a schedule that is worse on a confirm metric is never best.yaml; keep: "
          "it may be (flagged)")
    return str(rule)


def confirm_list(cfg: DictConfig, name: str) -> tuple[str, ...]:
    """``metric.confirm``: registered metrics other than the search metric, each once."""
    raw = OmegaConf.select(cfg, "metric.confirm", default=[])
    raw = [] if raw is None else raw
    names = list(raw) if OmegaConf.is_list(raw) or isinstance(raw, list) else None
    check(names is not None and all(isinstance(n, str) for n in names), "metric.confirm",
          raw, "give a list of metric names, e.g. metric.confirm=[fd_dinov2,kid]")
    for n in names:
        check(n in METRICS, "metric.confirm", n,
              f"is not a registered metric; use some of {', '.join(METRICS)}")
        check(n != name, "metric.confirm", n, "is the search metric (metric.name), which "
              "every confirmation scores anyway; leave it out")
    check(len(set(names)) == len(names), "metric.confirm", names, "names a metric twice")
    return tuple(names)


def network_file(cfg: DictConfig, network: NetworkDef) -> Path | None:
    """The checked weights file (or folder) of ``network``; None for the bundled one."""
    value = OmegaConf.select(cfg, network.key, throw_on_missing=False, default=None)
    if network.bundled and value is None:
        return None
    check(value not in (None, "???"), network.key, value,
          f"needs {network.file}; give its local path (nothing is downloaded)")
    path = Path(str(value))
    exists = path.is_dir() if network.folder else path.is_file()
    check(exists, network.key, str(value), f"no such {'folder' if network.folder else 'file'};"
          f" give {network.file}")
    if network.name in ("digits", "digits_autoencoder"):
        from ..configuration.weights import AUTOENCODER_FILE, CLASSIFIER_FILE, check_network_file

        check_network_file(path, network.key,
                           CLASSIFIER_FILE if network.name == "digits" else AUTOENCODER_FILE)
    return path


def check_reference_serves(reference: str, used: Sequence[str]) -> None:
    """A file of statistics serves only Frechet metrics of the networks it holds."""
    held = published_networks(Path(reference))
    if held is None:
        return
    for name in used:
        definition = METRICS[name]
        if definition.statistic == "clip_score":
            continue
        check(definition.statistic == "frechet", "metric.reference", reference,
              f"holds statistics only, but {name} needs the reference's features; give the "
              "reference images (a folder, zip or npz of uint8 images)")
        check(definition.network in held, "metric.reference", reference,
              f"holds statistics of {', '.join(held) or 'no network'}, not of "
              f"{definition.network} ({name}); give images or that network's statistics")


def published_networks(path: Path) -> tuple[str, ...] | None:
    """The networks a statistics file holds (None: it holds images, or is a folder)."""
    import numpy as np

    if not path.is_file():
        return None
    if path.suffix.lower() == ".pkl":
        from .edm2_reference import read_edm2_reference

        return tuple(EDM2_DETECTORS[k] for k in read_edm2_reference(path)
                     if k in EDM2_DETECTORS)
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return ("inception",) if {"mu", "sigma"} <= set(data.files) else None
    return None


#: EDM2's reference pickles name statistics by detector
EDM2_DETECTORS = {"fid": "inception", "fd_dinov2": "dinov2"}


def seed_range(cfg: DictConfig, start_key: str, count_key: str) -> SeedRange:
    """The seeds ``start_key`` .. + ``count_key``: at least 2 images, every seed below 2**63."""
    start, count = get_int(cfg, start_key, 0), get_int(cfg, count_key, 2)
    check(start + count <= SEED_LIMIT, start_key, start,
          f"with {count_key}={count} the seeds reach {start + count - 1}, but seeds must stay "
          "below 2**63 (torch's generators, the study's integers); lower it")
    return SeedRange(start, count)


def final_range(cfg: DictConfig, search: SeedRange) -> SeedRange:
    """``metric.final_samples`` seeds from ``metric.final_seed_start``, apart from ``search``."""
    if OmegaConf.select(cfg, "metric.final_seed_start") is None:
        n = get_int(cfg, "metric.final_samples", 2)
        start = search.stop
        check(start + n <= SEED_LIMIT, "metric.final_samples", n,
              f"the final seeds follow the search's (from {start}) and must stay below 2**63; "
              "lower metric.seed_start or set metric.final_seed_start")
    else:
        final = seed_range(cfg, "metric.final_seed_start", "metric.final_samples")
        start, n = final.start, final.count
        check(not SeedRange(start, n).overlaps(search), "metric.final_seed_start", start,
              f"the final seeds must not overlap the search seeds {search.start}.."
              f"{search.stop - 1}; use null (right after them) or a start >= {search.stop}")
    infinity = get_bool(cfg, "metric.fid_infinity")
    check(not infinity or n >= 20, "metric.fid_infinity", infinity,
          f"extrapolates from FID at 15 sample counts; metric.final_samples={n} is too few "
          "(use >= 20, 50000 as published)")
    return SeedRange(start, n)


def check_reference_file(path: Path) -> None:
    """A reference file must be a zip of images, an npz of images or of mu and sigma, an EDM2
    pickle, or a prompt set listing images (each of which must exist)."""
    import numpy as np

    suffix = path.suffix.lower()
    if is_prompt_set(path):
        listed_images(path, "metric.reference")
        return
    if suffix == ".pkl":
        from .edm2_reference import read_edm2_reference

        read_edm2_reference(path)
        return
    check(suffix in (".zip", ".npz"), "metric.reference", str(path),
          "a reference file must be a .zip of images, an .npz (uint8 images, or mu and sigma), "
          "an EDM2 reference .pkl, or a .csv or .jsonl prompt set listing images")
    check(zipfile.is_zipfile(path), "metric.reference", str(path),
          f"not a readable {suffix} file (it is not in zip format)")
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                keys = set(data.files)
        except (OSError, ValueError) as err:
            raise ConfigError("metric.reference", str(path), f"unreadable npz ({err})") from None
        check({"mu", "sigma"} <= keys or bool(keys & {"images", "arr_0"}), "metric.reference",
              str(path), f"holds {sorted(keys)}; an npz reference needs 'images' (or 'arr_0') "
              "uint8 images, or 'mu' and 'sigma'")
