"""Two sweeps side by side per NFE: whether their scores compare, and B - A with its interval.

Torch-free, for ``compare`` and the report. Scores compare when both sweeps measured them the
same way (metric, feature network, reference, images and seeds); two confirmed schedules of
such sweeps are paired by seed block, so B - A gets the jackknife interval the confirmation
gives each change (``metrics.blocks.between``) from the leave-one-block-out values on record.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..metrics.blocks import Delta, between
from .catalog import final_scores, paired_rows, summarize
from .group import Sweep
from .record import METRIC, SEARCH_N, SEARCH_START, study_attrs
from .results import metric_label, metric_name
from .summary import SummaryRow, fmt_interval


def measured(study: Sweep, protocol) -> dict:
    """How a sweep's scores were measured: metric, feature network, reference, images, seeds."""
    attrs = study_attrs(study)
    provenance = attrs.get(METRIC) or {}
    final = (protocol.seed_range.count, protocol.seed_range.start) if protocol else (None, None)
    return {"metric": metric_name(study), "label": metric_label(study),
            "features": f"{provenance.get('feature_extractor', '?')} (sha256 "
                        f"{str(provenance.get('feature_sha256', ''))[:12]})",
            "reference": provenance.get("reference", "?"), "final": final,
            "search": (attrs.get(SEARCH_N), attrs.get(SEARCH_START))}


def unlike(ma: dict, mb: dict, ra: SummaryRow, rb: SummaryRow) -> str | None:
    """Why two rows' best scores do not compare (None if they do)."""
    if ma["metric"] != mb["metric"]:
        return "the metrics differ"
    if (ma["features"], ma["reference"]) != (mb["features"], mb["reference"]):
        return "the feature networks or references differ"
    if ra.confirmed != rb.confirmed:
        return "one score is confirmed and the other a search score"
    key = "final" if ra.confirmed else "search"
    if ma[key] != mb[key]:
        return f"the {key} images or seeds differ"
    return None


def paired(ra: SummaryRow, rb: SummaryRow) -> Delta | None:
    """B's best minus A's and its 95% interval, where both kept the same seed blocks."""
    if ra.leave_out and rb.leave_out and len(ra.leave_out) == len(rb.leave_out):
        return between(ra.best_score, ra.leave_out, rb.best_score, rb.leave_out,
                       ra.higher_is_better)
    return None


@dataclass(frozen=True)
class Pair:
    """One NFE of two sweeps: their rows, why they do not compare, and B - A if they do."""

    nfe: int
    a: SummaryRow | None
    b: SummaryRow | None
    why: str | None
    delta: Delta | None

    @property
    def difference(self) -> float | None:
        """B's best minus A's where the two compare."""
        return None if self.why else self.b.best_score - self.a.best_score


def side_by_side(a: Sweep, b: Sweep) -> tuple[list[Pair], dict, dict]:
    """The two sweeps per NFE, and how each was measured."""
    (pa, scores_a), (pb, scores_b) = final_scores(a), final_scores(b)
    ma, mb = measured(a, pa), measured(b, pb)
    pairs = []
    for nfe, ra, rb in paired_rows(summarize(a, scores_a), summarize(b, scores_b)):
        why = unlike(ma, mb, ra, rb) if ra and rb else "one sweep lacks the NFE"
        pairs.append(Pair(nfe, ra, rb, why, None if why else paired(ra, rb)))
    return pairs, ma, mb


def difference_text(pair: Pair) -> str:
    """B - A with its paired interval (``n.s.`` where it reaches zero); ``-`` where apart."""
    if pair.why:
        return "-"
    delta = pair.delta
    if delta is None:
        return f"{pair.difference:+.4g}"
    return fmt_interval(delta.delta, (delta.low, delta.high), delta.significant or delta.worse)
