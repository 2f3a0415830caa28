"""Scores reused: a schedule scored under one protocol gives the same number every time.

A schedule's images depend only on the model (its weights and settings), the precision, the
sampler, the schedule and the seeds; a metric's score of them on its feature network and
reference too. A score made under such a key is kept in the storage, as a system attribute
``skipsearch:scores/<digest>`` of the study that made it, and every cell of every sweep on
that storage reads it instead of generating the images again: search baselines, confirmation
candidates, limit baselines and the baseline of ``windows``. Changing any part of the key
gives another digest, and the score is made anew (torch-free).

An entry holds, per metric, the score on the first ``blocks_done`` blocks of seeds, each
block's own score (``block_values``: what racing compares), the score with each of those
blocks left out (``leave_out``: what intervals pair) and, for search baselines, the score at
each stage.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from ..execution.seed_range import SeedRange
from ..samplers.spec import SamplerSpec
from ..tuning.schedule import SkipSchedule
from .record import SCORES_PREFIX, SYSTEM_PREFIX, set_study_attr

log = logging.getLogger(__name__)

STATE_LIMIT = 64 * 2**20  # bytes of per-block state kept for one pass, at most


def digest(key: Mapping) -> str:
    """A short, stable name for a key: SHA-256 of its canonical JSON, 24 hex digits."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def applied(schedule: SkipSchedule) -> dict:
    """What of a schedule acts on the images: the coefficients, not how they were named.

    A baseline named by ``rho_top``/``rho_bottom`` and one named per skip are the same images.
    """
    out = {k: v for k, v in schedule.to_dict().items() if k not in ("parameterization", "params")}
    if schedule.profile == "constant":
        out.pop("profile_range")
    return out


@dataclass
class Reuse:
    """The scores on record in one storage, and the part of their key a run fixes.

    ``base``: what the images depend on besides schedule, sampler and seeds (model, weights'
    hash, model settings, precision, version). ``enabled`` False reads and writes nothing.
    """

    storage: optuna.storages.BaseStorage | None
    base: Mapping
    enabled: bool = True
    entries: dict[str, dict] | None = field(default=None, repr=False)
    reused_images: int = 0  # images not generated in this run thanks to an entry
    folder: Path | None = None  # where per-block sums are kept (``cache/scores`` in out_dir)

    @classmethod
    def off(cls) -> Reuse:
        """A ``Reuse`` that reads and writes nothing."""
        return cls(None, {}, enabled=False)

    def keys(self, schedule: SkipSchedule, sampler: SamplerSpec, seeds: SeedRange,
             blocks: int, metrics: Mapping[str, Mapping],
             stages: Sequence[int] = ()) -> dict[str, dict]:
        """Metric name -> everything its score of these images depends on.

        ``metrics``: each metric's provenance (feature network and its hash, reference).
        """
        images = {**self.base, "schedule": applied(schedule),
                  "sampler": {**sampler.to_dict(), "steps": sampler.steps},
                  "seeds": [seeds.start, seeds.count], "blocks": int(blocks),
                  "stages": sorted(int(s) for s in stages)}
        return {name: {**images, "metric": dict(p)} for name, p in metrics.items()}

    def load(self) -> dict[str, dict]:
        """Every entry in the storage, by digest (read once; ``refresh`` reads again)."""
        if self.entries is None:
            self.entries = {}
            if self.enabled and self.storage is not None:
                head = SYSTEM_PREFIX + SCORES_PREFIX
                for frozen in self.storage.get_all_studies():
                    for k, v in frozen.system_attrs.items():
                        if k.startswith(head):
                            self.entries[k.removeprefix(head)] = v
        return self.entries

    def refresh(self) -> None:
        """Forget what was read, so the next lookup sees other workers' entries."""
        self.entries = None

    def get(self, keys: Mapping[str, dict]) -> dict[str, dict] | None:
        """Metric name -> its entry, when every key in ``keys`` (name -> key) is on record.

        The entries must cover the same number of blocks (a pass scores its metrics together).
        """
        if not self.enabled:
            return None
        entries = self.load()
        found = {n: entries.get(digest(k)) for n, k in keys.items()}
        if any(v is None for v in found.values()):
            return None
        if len({v.get("blocks_done") for v in found.values()}) != 1:
            return None
        return found  # type: ignore[return-value]

    def put(self, study: optuna.Study, keys: Mapping[str, dict],
            values: Mapping[str, dict]) -> None:
        """Keep each metric's entry (``values[name]``) in ``study`` under its key's digest."""
        if not self.enabled:
            return
        entries = self.load()
        for name, key in keys.items():
            name_digest = digest(key)
            entry = {**values[name], "metric": name}
            entries[name_digest] = entry
            set_study_attr(study, SCORES_PREFIX + name_digest, entry)

    def state_path(self, keys: Mapping[str, dict]) -> Path | None:
        """The file of the per-block state of a pass scoring ``keys`` (None: none kept)."""
        if not self.enabled or self.folder is None:
            return None
        return self.folder / f"{digest({n: digest(k) for n, k in keys.items()})}.safetensors"

    def keep_state(self, keys: Mapping[str, dict], states: Mapping[str, Mapping | None],
                   blocks_done: int) -> None:
        """Keep each metric's per-block state of a pass, when every metric has a small one.

        A later race that needs the pass on more blocks than its entries hold goes on from
        it instead of generating the first blocks again. Larger than ``STATE_LIMIT`` bytes
        (2048-d feature sums: 33 MB a block), not kept by a statistic, or a folder that cannot
        be written: nothing is kept (the last with a warning).
        """
        path = self.state_path(keys)
        if path is None or any(v is None for v in states.values()):
            return
        from safetensors.torch import save_file

        tensors = {f"{n}/{k}": t.contiguous() for n, v in states.items() for k, t in v.items()}
        if sum(t.numel() * t.element_size() for t in tensors.values()) > STATE_LIMIT:
            return
        part = path.with_suffix(".part")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file(tensors, str(part), metadata={"blocks_done": str(int(blocks_done))})
            part.replace(path)
        except OSError as err:  # the scores are stored; only a later race's head start is lost
            log.warning("kept no per-block sums in %s (%s); a later race that needs this "
                        "pass further draws it again", path.parent, err)

    def state(self, keys: Mapping[str, dict]) -> tuple[dict[str, dict], int] | None:
        """Each metric's kept per-block state of a pass and the blocks it covers, or None."""
        path = self.state_path(keys)
        if path is None or not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as file:
                blocks = int(file.metadata()["blocks_done"])
                states: dict[str, dict] = {}
                for name in file.keys():
                    metric, part = name.rsplit("/", 1)
                    states.setdefault(metric, {})[part] = file.get_tensor(name)
        except Exception as err:  # a damaged file: the images are made again
            log.warning("ignored the kept state %s (%s)", path.name, err)
            return None
        return (states, blocks) if set(states) == set(keys) else None

    def note(self, what: str, images: int, source: str = "") -> None:
        """Count and log a reused score: what it was, and the images it saved."""
        self.reused_images += images
        log.info("reused %s: scored before on the same model, sampler, seeds and metric%s "
                 "(%d images not generated)", what, f" ({source})" if source else "", images)
