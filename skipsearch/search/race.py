"""Racing confirmation: a cell's candidates scored together, block by block of seeds.

Confirmation scores a cell's candidates (its top-k tuned trials and its baseline) on the same
fresh seeds, cut into K consecutive blocks. A schedule far behind the leader after a few
blocks rarely catches up, so the candidates advance together, one block at a time, and after
block j (2 <= j < K) each is compared with the leader (the best mean block score so far):

- d_b = S_c(b) - S_leader(b) for every block b seen, each S(b) the metric on that block's
  images alone (signs flipped where higher is better). Blocks hold disjoint seeds, so the
  d_b are independent and identically distributed;
- c stops when the one-sided paired t test rejects "c is no worse than the leader":
  mean(d) / (sd(d) / sqrt(j)) > t(1 - a_j, j - 1).

Alpha spending controls the error over the looks: with a(t) = alpha * t, t = j / K the share
of blocks seen, look j spends a_j = a(j / K) - a((j - 1) / K) (look 2 also spends look 1's
share, where no test runs), split evenly over the m - 1 rivals of a race of m candidates:
each comparison tests at a_j / (m - 1). The leader at a look is one of those rivals, so by
the union bound over looks and rivals the cell's truly best candidate (or any candidate as
good as every other) is stopped with probability at most alpha (``search.race_alpha``).

The baseline races too and stops once shown beaten. A stopped candidate keeps its score on
the blocks it was scored on and the comparison that stopped it; it is never a cell's best.
The survivors are scored on all K blocks. ``search.race=false`` scores everyone on every block.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from optuna.trial import FrozenTrial

from ..execution.evaluate import prompts_of, sample_batches
from ..execution.progress import Progress
from ..execution.seed_range import SeedRange
from ..metrics.blocks import t_quantile
from ..metrics.fid_infinity import infinity_counts
from ..metrics.scorer import PassState, Scorer
from ..models import LoadedModel
from ..samplers.spec import SamplerSpec
from ..tuning.schedule import SkipSchedule
from .reuse import Reuse

log = logging.getLogger(__name__)


def block_bounds(n: int, blocks: int) -> list[int]:
    """Seed positions where each block starts, and ``n``: block b is [bounds[b], bounds[b+1]).

    The same cut as ``metrics.statistic.block_ids``: position p is in block p * blocks // n.
    """
    return [-(-b * n // blocks) for b in range(blocks + 1)]


def spent(look: int, blocks: int, alpha: float) -> float:
    """The error rate look ``look`` (2 .. blocks - 1) may spend: a(j / K) - a((j - 1) / K)."""
    low = 0.0 if look <= 2 else alpha * (look - 1) / blocks
    return alpha * look / blocks - low


def worse_by(c: Sequence[float], leader: Sequence[float],
             higher_is_better: bool) -> tuple[float, float] | None:
    """Mean of d_b (c worse than the leader when positive) and its t statistic; None if flat."""
    d = [(a - b) * (-1.0 if higher_is_better else 1.0) for a, b in zip(c, leader, strict=True)]
    j = len(d)
    mean = math.fsum(d) / j
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in d) / (j - 1))
    if sd == 0.0:
        return None if mean == 0.0 else (mean, math.copysign(math.inf, mean))
    return mean, mean / (sd / math.sqrt(j))


def stops(values: Sequence[Sequence[float]], blocks: int, alpha: float,
          higher_is_better: bool = False, rivals: int = 1) -> dict[int, dict]:
    """Which candidates stop at this look, given each one's block scores so far (same count).

    Index -> the leader's index, the mean block difference, its t statistic and the bound it
    passed, and the error rate the look spends on each comparison: its share of ``alpha``
    split over the ``rivals`` a candidate may be compared with. None stop before 2 blocks,
    at the last block, or while a block score is not finite (a block too small for it).
    """
    j = len(values[0]) if values else 0
    if len(values) < 2 or not 2 <= j < blocks or \
            not all(math.isfinite(v) for row in values for v in row):
        return {}
    sign = -1.0 if higher_is_better else 1.0
    leader = min(range(len(values)), key=lambda i: sign * math.fsum(values[i]))
    level = spent(j, blocks, alpha) / max(rivals, 1)
    bound = t_quantile(j - 1, 1.0 - level)
    out = {}
    for i, row in enumerate(values):
        test = None if i == leader else worse_by(row, values[leader], higher_is_better)
        if test is not None and test[1] > bound:
            out[i] = {"leader": leader, "mean_block_delta": test[0], "t": test[1],
                      "t_bound": bound, "alpha_spent": level}
    return out


@dataclass
class Entrant:
    """One candidate of a race: what it runs, what is known of it, how far it got."""

    trial: FrozenTrial | None  # None: a schedule outside the study (a limit baseline)
    baseline: bool
    schedule: SkipSchedule
    sampler: SamplerSpec
    keys: Mapping[str, dict] = field(default_factory=dict)  # each metric's reuse key
    known: Mapping[str, Mapping] | None = None  # stored entries (``search.reuse``), by metric
    state: PassState | None = None
    fed: int = 0  # blocks generated in this run
    generated: int = 0  # images generated in this run
    values: list[float] = field(default_factory=list)  # the primary metric per block
    stop: dict | None = None
    leftover: tuple | None = None  # (position, images) drawn in a batch past the last block

    @property
    def number(self) -> int | None:
        """Its trial's number (None for a schedule outside the study)."""
        return self.trial.number if self.trial is not None else None

    @property
    def known_blocks(self) -> int:
        """Blocks the stored entries cover (0 without them)."""
        return int(next(iter(self.known.values()))["blocks_done"]) if self.known else 0

    @property
    def done(self) -> int:
        """Blocks this candidate's scores cover."""
        return self.fed if self.fed else self.known_blocks


@dataclass
class Race:
    """The candidates of one cell, the seeds, and how they are scored."""

    model: LoadedModel
    scorer: Scorer
    names: Sequence[str]
    seeds: Sequence[int]
    blocks: int
    batch_size: int
    device: str
    fid_infinity: bool = False
    alpha: float = 0.05
    racing: bool = True
    reuse: Reuse = field(default_factory=Reuse.off)  # stored scores and per-block sums

    def run(self, entrants: list[Entrant], label: str) -> list[Entrant]:
        """Advance every candidate block by block, stopping the beaten ones; return them."""
        k, n = self.blocks, len(self.seeds)
        bar = Progress(n * sum(e.known_blocks < k for e in entrants),
                       f"confirm {label} ({len(entrants)} candidates)")
        for j in range(1, k + 1):
            for e in entrants:
                if e.stop is None:
                    self.reach(e, j, bar)
            if self.racing and 2 <= j < k:
                self.look(entrants, j, label)
        bar.close()
        return entrants

    @cached_property
    def bounds(self) -> list[int]:
        """Where each block of seeds starts (and the end)."""
        return block_bounds(len(self.seeds), self.blocks)

    def keys(self, schedule: SkipSchedule, sampler: SamplerSpec) -> dict[str, dict]:
        """Each metric's reuse key for ``schedule`` scored by this race."""
        return self.reuse.keys(schedule, sampler, SeedRange(self.seeds[0], len(self.seeds)),
                               self.blocks, {n: self.scorer.metrics[n].provenance()
                                             for n in self.names},
                               infinity_counts(len(self.seeds)) if self.fid_infinity else ())

    def reach(self, e: Entrant, j: int, bar: Progress | None = None,
              again: bool = False) -> None:
        """Have ``e``'s first ``j`` blocks scored: stored, or generated (from block 0 if needed).

        ``again``: generate them even where stored entries hold them (their values alone
        cannot be extended by more blocks).
        """
        if e.fed >= j:
            return
        if e.fed == 0 and e.known_blocks >= j and not again:
            if not e.values:
                e.values = list(e.known[self.scorer.primary]["block_values"])
            return
        if e.state is None:
            self.fresh(e)
            self.resume(e)
            if e.fed >= j:
                return
        bounds = self.bounds
        self.scorer.restore(e.state)
        prompts = prompts_of(self.model, self.scorer)
        for b in range(e.fed, j):
            for chunk, images in self.images(e, bounds[b], bounds[b + 1], bar):
                self.scorer.update(images, prompts(chunk) if prompts else None)
            e.values.append(self.value_of(self.scorer.accumulators[self.scorer.primary], b,
                                          self.scorer.finite))
        e.fed, e.state = j, self.scorer.snapshot()

    def fresh(self, e: Entrant) -> None:
        """Give ``e`` an empty pass over the seeds: no block scored yet."""
        self.scorer.reset(checkpoints=infinity_counts(len(self.seeds))
                          if self.fid_infinity else (), blocks=self.blocks,
                          total=len(self.seeds), names=self.names)
        e.state, e.values, e.leftover, e.fed = self.scorer.snapshot(), [], None, 0

    def resume(self, e: Entrant) -> None:
        """Go on from a stored candidate's kept per-block state (``Reuse.keep_state``), if any.

        Its first blocks then need no images; without a kept state they are generated again.
        """
        kept = self.reuse.state(e.keys) if e.known else None
        if kept is None or kept[1] != e.known_blocks or self.fid_infinity:
            return
        states, blocks = kept
        try:
            for name in self.names:
                e.state.accumulators[name].load(states[name], self.bounds[blocks])
        except (KeyError, ValueError, NotImplementedError) as err:
            log.info("trial %s: its kept state does not fit (%s); generating it again",
                     e.number, err)
            self.fresh(e)
            return
        e.state = PassState(e.state.active, e.state.accumulators, self.bounds[blocks],
                            e.state.checkpoints, [], e.state.finite)
        e.fed, e.values = blocks, list(e.known[self.scorer.primary]["block_values"])
        self.reuse.note(f"the first {blocks} blocks of trial {e.number}", self.bounds[blocks],
                        "kept per-block sums")

    def images(self, e: Entrant, low: int, high: int, bar: Progress | None):
        """``e``'s images of seed positions [low, high), in the batches a plain run draws.

        Batches start at multiples of ``batch_size`` as in one pass over all the seeds (a
        network's float results may depend on the batch's size); the part of a batch past
        ``high`` is kept for the next block.
        """
        if e.leftover is not None:
            start, kept = e.leftover
            take = min(high - start, kept.shape[0])
            yield self.seeds[start:start + take], kept[:take]
            e.leftover = (start + take, kept[take:]) if take < kept.shape[0] else None
            low = start + take
        if low >= high:
            return
        size = self.batch_size
        first = low - low % size  # a batch starts there in a plain run
        end = min(len(self.seeds), -(-high // size) * size)
        for chunk, images in sample_batches(self.model, e.schedule, e.sampler,
                                            self.seeds[first:end], size, self.device, bar=bar):
            e.generated += len(chunk)
            skip, take = max(low - first, 0), max(0, min(high - first, len(chunk)))
            if take < len(chunk):
                e.leftover = (first + take, images[take:])
            if take > skip:
                yield chunk[skip:take], images[skip:take]
            first += len(chunk)

    def look(self, entrants: list[Entrant], j: int, label: str) -> None:
        """Stop every live candidate shown worse than the leader after ``j`` blocks."""
        live = [e for e in entrants if e.stop is None]
        for e in live:
            if e.state is not None and not e.state.finite:
                e.stop = {"blocks": j, "images": self.bounds[j], "reason": "non-finite images"}
        live = [e for e in live if e.stop is None]
        found = stops([e.values[:j] for e in live], self.blocks, self.alpha,
                      self.scorer.higher_is_better(), len(entrants) - 1)
        for i, stop in found.items():
            e, leader = live[i], live[stop.pop("leader")]
            e.stop = {"blocks": j, "images": self.bounds[j], "leader": leader.number, **stop}
            log.info("confirm %s: trial %s stops after %d of %d blocks (%d images): worse than "
                     "trial %s by %.4g a block, t %.3g > %.3g", label, e.number, j,
                     self.blocks, self.bounds[j], leader.number,
                     stop["mean_block_delta"], stop["t"], stop["t_bound"])

    def values_at(self, e: Entrant, m: int) -> dict[str, dict]:
        """Each metric on ``e``'s first ``m`` blocks: score, leave-one-block-out values, parts.

        From the pass when it got that far, else from the stored entries, else generated again.
        """
        known = self.stored(e, m)
        if known is not None:
            return known
        if e.fed < m:
            self.reach(e, m, again=True)
        out = {}
        for name in self.names:
            acc = e.state.accumulators[name]
            with acc.within(range(m)):
                if not e.state.finite:
                    score, leave_out, parts = math.nan, [math.nan] * m, {}
                else:
                    score, parts = float(acc.value()), acc.parts()
                    leave_out = [float(acc.value(b)) for b in range(m)] if m >= 2 else []
            blocks = e.values[:m] if name == self.scorer.primary else [
                self.value_of(acc, b, e.state.finite) for b in range(m)]
            out[name] = {"score": score, "leave_out": leave_out, "block_values": blocks,
                         "parts": parts, "blocks_done": m, "blocks": self.blocks,
                         "images": self.bounds[m]}
        return out

    def stored(self, e: Entrant, m: int) -> dict[str, dict] | None:
        """``values_at`` from the stored entries, when they hold ``m`` blocks and no pass does."""
        if e.fed >= m or not e.known:
            return None
        if e.known_blocks == m:
            return {n: dict(v) for n, v in e.known.items()}
        prefix = [v.get("prefix", {}).get(str(m)) for v in e.known.values()]
        if m > e.known_blocks or any(p is None for p in prefix):
            return None
        return {n: {**p, "block_values": list(v["block_values"][:m]), "blocks_done": m,
                    "blocks": self.blocks, "images": self.bounds[m]}
                for (n, v), p in zip(e.known.items(), prefix, strict=True)}

    def infinity(self, e: Entrant) -> float | None:
        """FID-infinity of a candidate scored on every block (None if not asked or stopped)."""
        if not self.fid_infinity or e.stop is not None:
            return None
        if e.fed < self.blocks:
            return (e.known or {}).get(self.scorer.primary, {}).get("score_infinity")
        self.scorer.restore(e.state)
        return self.scorer.compute_infinity().value

    @staticmethod
    def value_of(acc, b: int, finite: bool) -> float:
        """The statistic on block ``b`` alone (NaN where it cannot be computed)."""
        if not finite:
            return math.nan
        with acc.within([b]):
            try:
                return float(acc.value())
            except ValueError:  # too few images in a block for this statistic
                return math.nan


def scored(race: Race, schedule: SkipSchedule, sampler: SamplerSpec, study,
           what: str) -> tuple[dict[str, dict], int]:
    """Each metric of ``race`` on every block for one schedule, and the images generated.

    Taken from the entries ``race.reuse`` holds when they cover every block (logged), else
    generated and stored in ``study``.
    """
    keys = race.keys(schedule, sampler)
    e = Entrant(None, False, schedule, sampler, keys, race.reuse.get(keys))
    if e.known and e.known_blocks == race.blocks:
        race.reuse.note(what, race.bounds[-1])
        return {n: dict(v) for n, v in e.known.items()}, 0
    e.known = None
    bar = Progress(len(race.seeds), what)
    race.reach(e, race.blocks, bar)
    bar.close()
    values = race.values_at(e, race.blocks)
    infinity = race.infinity(e)
    race.reuse.put(study, keys, {n: {**v, "what": what, **({"score_infinity": infinity}
                                                          if n == race.scorer.primary else {})}
                                 for n, v in values.items()})
    return values, e.generated
