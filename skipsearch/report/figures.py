"""The report's figures, drawn with matplotlib's Agg canvas (no display, no pyplot state)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..search.summary import SummaryRow
from .data import TrialRow

CONTOUR_PARAMS = ("rho_bottom", "rho_top")
DPI = 110


def new_figure(width: float, height: float) -> Figure:
    """A figure on an Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: Path) -> Path:
    """Write the figure as a PNG; returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def nfe_colors(nfes: Sequence[int]) -> dict[int, tuple]:
    """One colour per NFE out of the tab10 cycle, in NFE order."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {nfe: cmap(i % 10) for i, nfe in enumerate(sorted(set(nfes)))}


def wide_range(values: Sequence[float]) -> bool:
    """True when positive values span more than a factor of 20 (use a log axis)."""
    return bool(values) and min(values) > 0 and max(values) / min(values) > 20


def sign_of(higher_is_better: bool) -> float:
    """-1 for a maximised metric, 1 for a minimised one: ``sign * score`` is smaller-better."""
    return -1.0 if higher_is_better else 1.0


def contour_points(rows: Sequence[TrialRow],
                   higher_is_better: bool = False) -> dict[int, np.ndarray]:
    """Per NFE an array of (rho_bottom, rho_top, score) of completed trials, best per point."""
    sign = sign_of(higher_is_better)
    best: dict[int, dict[tuple[float, float], float]] = {}
    for r in rows:
        if not r.complete or r.nfe is None or r.score is None or \
                not all(p in r.params for p in CONTOUR_PARAMS):
            continue
        key = (float(r.params["rho_bottom"]), float(r.params["rho_top"]))
        at = best.setdefault(r.nfe, {})
        if key not in at or sign * r.score < sign * at[key]:
            at[key] = r.score
    return {nfe: np.array([(x, y, f) for (x, y), f in sorted(points.items())])
            for nfe, points in sorted(best.items())}


def contour_figure(rows: Sequence[TrialRow],
                   bounds: Mapping[str, tuple[float, float]] | None = None,
                   label: str = "score", higher_is_better: bool = False) -> Figure | None:
    """Search score over rho_bottom x rho_top, one panel per NFE; None without those params.

    ``bounds`` (the searched ranges) set the axes, so every panel shows the whole space; the
    star marks the best trial (the highest score of a maximised metric, else the lowest).
    """
    points = contour_points(rows, higher_is_better)
    if not points:
        return None
    sign = sign_of(higher_is_better)
    ncols = min(len(points), 3)
    nrows = math.ceil(len(points) / ncols)
    fig = new_figure(4.2 * ncols, 3.6 * nrows + 0.4)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, (nfe, xyz) in zip(axes, points.items(), strict=False):
        x, y, z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        low, high = float(z.min()), float(z.max())
        norm = Normalize(low, high if high > low else low + 1.0)
        mappable = None
        if len(z) >= 3 and high > low:
            try:
                mappable = ax.tricontourf(x, y, z, levels=12, cmap="viridis", norm=norm)
            except (ValueError, RuntimeError):  # collinear or otherwise degenerate points
                mappable = None
        dots = ax.scatter(x, y, c=z, cmap="viridis", norm=norm, edgecolors="white",
                          linewidths=0.6, s=28, zorder=3)
        best = int(np.argmin(sign * z))
        ax.scatter([x[best]], [y[best]], marker="*", s=180, c="red", edgecolors="black",
                   linewidths=0.6, zorder=4)
        ax.set(title=f"NFE {nfe}: best {z[best]:.4g} ({len(z)} trials)", xlabel="rho_bottom",
               ylabel="rho_top")
        for name, setter in zip(CONTOUR_PARAMS, (ax.set_xlim, ax.set_ylim), strict=True):
            if bounds and name in bounds:
                lo, hi = bounds[name]
                pad = 0.03 * (hi - lo) or 0.05
                setter(lo - pad, hi + pad)
        fig.colorbar(mappable or dots, ax=ax, label=f"search {label}")
    for ax in axes[len(points):]:
        ax.set_visible(False)
    fig.suptitle(f"search {label} over rho_bottom x rho_top per NFE (star: best, "
                 f"{'higher' if higher_is_better else 'lower'} is better)")
    return fig


def score_vs_nfe_title(summary: Sequence[SummaryRow], label: str) -> str:
    """What the score-vs-NFE figure shows: confirmed scores (with intervals) or search scores."""
    if not any(r.confirmed for r in summary):
        return f"{label} per NFE: baseline and best (search scores, not confirmed)"
    ci = ", 95% CI" if any(r.delta_ci95 for r in summary) else ""
    return f"{label} per NFE: baseline and best (confirmed{ci})"


def score_vs_nfe_figure(summary: Sequence[SummaryRow],
                        limit: Mapping[int, float] | None = None,
                        label: str = "score") -> Figure | None:
    """Baseline and best score against NFE, confirmed points filled, the Pareto front circled.

    A confirmed best carries the 95% interval of its change over the baseline (same seeds)
    as an error bar; ``limit`` (NFE -> baseline score at larger step counts) extends the
    baseline to convergence. A baseline a race stopped is drawn hollow.
    """
    if not summary:
        return None
    higher = any(r.higher_is_better for r in summary)
    fig = new_figure(6.4, 4.2)
    ax = fig.subplots()
    base = [(r.nfe, r.baseline_score) for r in summary if r.baseline_score is not None]
    base = sorted({**dict(base), **dict(limit or {})}.items())
    if base:
        ax.plot(*zip(*base, strict=True), "s--", color="tab:gray", label="baseline (rho = 1)")
    stopped = [r for r in summary if r.baseline_images is not None]
    if stopped:  # a race stopped them: scored on fewer images than the rest
        ax.plot([r.nfe for r in stopped], [r.baseline_score for r in stopped], "s",
                color="tab:gray", markerfacecolor="white",
                label="baseline stopped by the race (fewer images)")
    nfes = [r.nfe for r in summary]
    ax.plot(nfes, [r.best_score for r in summary], "-", color="tab:blue", label="tuned (best)")
    done = [r for r in summary if r.confirmed]
    open_ = [r for r in summary if not r.confirmed]
    if done:
        ax.plot([r.nfe for r in done], [r.best_score for r in done], "o", color="tab:blue",
                label="confirmed on fresh seeds")
    bars = [r for r in done if r.delta is not None and r.delta_ci95]
    if bars:  # best + (interval - delta): the change's interval drawn around the best
        ax.errorbar([r.nfe for r in bars], [r.best_score for r in bars],
                    yerr=[[max(r.delta - r.delta_ci95[0], 0.0) for r in bars],
                          [max(r.delta_ci95[1] - r.delta, 0.0) for r in bars]],
                    fmt="none", ecolor="tab:blue", capsize=4,
                    label="95% CI of the change over the baseline")
    if open_:
        ax.plot([r.nfe for r in open_], [r.best_score for r in open_], "o", color="tab:blue",
                markerfacecolor="white", label="search score (not confirmed)")
    front = [r for r in summary if r.on_front]
    ax.plot([r.nfe for r in front], [r.best_score for r in front], "o", markersize=14,
            markerfacecolor="none", markeredgecolor="tab:red", markeredgewidth=1.5,
            label="Pareto front")
    values = [r.best_score for r in summary] + [f for _, f in base]
    if wide_range(values):
        ax.set_yscale("log")
    ticks = sorted({*nfes, *(limit or {})})
    ax.set(xlabel="NFE", ylabel=f"{label} ({'higher' if higher else 'lower'} is better)",
           xticks=ticks, title=score_vs_nfe_title(summary, label))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def history_figure(rows: Sequence[TrialRow], label: str = "score",
                   higher_is_better: bool = False) -> Figure | None:
    """Search score per trial number, a colour per NFE, pruned trials as crosses, best so far."""
    shown = [r for r in rows if r.nfe is not None and r.score is not None
             and (r.complete or r.pruned)]
    if not shown:
        return None
    best_so_far = np.maximum.accumulate if higher_is_better else np.minimum.accumulate
    fig = new_figure(7.2, 4.2)
    ax = fig.subplots()
    colors = nfe_colors([r.nfe for r in shown])
    for nfe, color in colors.items():
        done = [r for r in shown if r.nfe == nfe and r.complete]
        cut = [r for r in shown if r.nfe == nfe and r.pruned]
        if done:
            ax.plot([r.number for r in done], [r.score for r in done], "o", color=color,
                    label=f"NFE {nfe}")
            best = best_so_far([r.score for r in done])
            ax.step([r.number for r in done], best, where="post", color=color, alpha=0.8)
        if cut:
            ax.plot([r.number for r in cut], [r.score for r in cut], "x", color=color,
                    label=f"NFE {nfe} pruned")
    if wide_range([r.score for r in shown]):
        ax.set_yscale("log")
    ax.set(xlabel="trial", ylabel=f"search {label}",
           title=f"search {label} per trial (line: best so far per NFE, "
                 f"{'higher' if higher_is_better else 'lower'} is better)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def importance_figure(per_cell: Mapping[str, Mapping[str, float]] | None,
                      label: str = "score") -> Figure | None:
    """Horizontal bars of each parameter's importance, one bar per cell of the sweep."""
    if not per_cell:
        return None
    names = sorted({n for imp in per_cell.values() for n in imp})[::-1]
    height = 0.8 / len(per_cell)
    fig = new_figure(6.4, 0.8 + 0.3 * len(names) * len(per_cell))
    ax = fig.subplots()
    for i, (cell, imp) in enumerate(per_cell.items()):
        ys = [k + i * height for k in range(len(names))]
        bars = ax.barh(ys, [imp.get(n, 0.0) for n in names], height=height, label=cell)
        ax.bar_label(bars, fmt="%.3f", padding=3, fontsize=7)
    ax.set_yticks([k + 0.4 - height / 2 for k in range(len(names))], names)
    ax.set(xlabel=f"importance for the search {label} within each cell (fANOVA)",
           xlim=(0, 1.15), title=f"parameter importances for the search {label} per cell")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig
