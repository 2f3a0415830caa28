"""Figures and report sections of the window study and the denoising-loss analysis.

``skipsearch windows`` and ``skipsearch analyze`` write their CSV and PNG into the study's
report folder; ``skipsearch report`` adds a section for each CSV it finds there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter

from ..analysis.loss import LossRow, read_loss_csv
from ..analysis.windows import WindowRow, read_window_csv
from .figures import new_figure, save_png
from .page import Cell, figure, fmt_change, fmt_score, note, paragraph, section, table

WINDOWS_CSV, WINDOWS_PNG = "windows.csv", "windows.png"
LOSS_CSV, LOSS_PNG = "loss.csv", "loss.png"
SCHEDULES_DIR = "schedules"  # under a study's report folder: one folder per studied schedule


def windows_figure(rows: Sequence[WindowRow], title: str = "") -> Figure:
    """Score change per noise window against sigma (log axis); the full range as a line."""
    fig = new_figure(6.4, 3.6)
    ax = fig.add_subplot()
    windows = [r for r in rows if r.kind == "window"]
    for r in windows:
        w = r.window
        ax.plot([w.sigma_lo, w.sigma_hi], [r.change, r.change], color="tab:blue", lw=3,
                solid_capstyle="butt")
        if r.change_interval is not None:  # the paired 95% interval, where one was computed
            low, high = r.change_interval
            ax.errorbar([w.sigma_mid], [r.change], yerr=[[r.change - low], [high - r.change]],
                        color="tab:blue", capsize=3)
    ax.plot([r.window.sigma_mid for r in windows], [r.change for r in windows], "o",
            color="tab:blue", label="schedule within the window")
    full = next((r for r in rows if r.kind == "full"), None)
    if full is not None:
        ax.axhline(full.change, color="tab:orange", ls="--", label="schedule everywhere")
    ax.axhline(0.0, color="0.4", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("noise level sigma (window's levels; bar: its range)")
    ax.set_ylabel("score change from baseline")
    ax.set_title(title or "score change per noise window (the windows command's metric)",
                 fontsize=9)
    ax.legend(fontsize=8)
    return fig


def loss_figure(rows: Sequence[LossRow], title: str = "") -> Figure:
    """Tuned over untuned denoising loss per sigma (log axis), pixel and feature space."""
    fig = new_figure(6.4, 3.6)
    ax = fig.add_subplot()
    sigmas = [r.sigma for r in rows]
    ax.plot(sigmas, [r.pixel_ratio for r in rows], "o-", ms=3, label="pixel space (EDM loss)")
    ax.plot(sigmas, [r.feature_ratio for r in rows], "s-", ms=3, label="feature space")
    ax.axhline(1.0, color="0.4", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")  # a ratio: 0.9 and 1.1 are as far from 1
    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
        axis(FormatStrFormatter("%g"))
    ax.set_xlabel("noise level sigma")
    ax.set_ylabel("loss ratio tuned / untuned")
    ax.set_title(title or "denoising loss tuned / untuned", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def save_windows(rows: Sequence[WindowRow], folder: Path, title: str = "") -> Path:
    """Write windows.png into ``folder``; returns its path."""
    return save_png(windows_figure(rows, title), folder / WINDOWS_PNG)


def save_loss(rows: Sequence[LossRow], folder: Path, title: str = "") -> Path:
    """Write loss.png into ``folder``; returns its path."""
    return save_png(loss_figure(rows, title), folder / LOSS_PNG)


def instrument_folders(folder: Path) -> list[Path]:
    """The folders holding window or loss results of a study's report folder: one per studied
    schedule (``schedules/<tag>``), and the report folder itself (older runs wrote there)."""
    found = sorted(p.parent for p in (folder / SCHEDULES_DIR).glob("*/*.csv")
                   if p.name in (WINDOWS_CSV, LOSS_CSV))
    return [folder, *dict.fromkeys(found)]


def suffix(folder: Path, study_folder: Path) -> tuple[str, str]:
    """An id suffix and a heading suffix naming the schedule of ``folder`` (none: the study's)."""
    if folder == study_folder:
        return "", ""
    return f"-{folder.name}", f" ({folder.name})"


def windows_section(folder: Path, study_folder: Path | None = None) -> str:
    """The window study of ``folder/windows.csv``, or nothing if it was not run."""
    key, named = suffix(folder, study_folder or folder)
    path = folder / WINDOWS_CSV
    if not path.is_file():
        return ""
    rows = read_window_csv(path)
    body = []
    for r in rows:
        w = r.window
        interval = ("-" if r.change_interval is None
                    else f"[{r.change_interval[0]:+.4g}, {r.change_interval[1]:+.4g}]")
        body.append(({"data-kind": r.kind, "data-window": "" if w is None else str(w.index)},
                     [Cell(r.kind, "text"), "-" if w is None else f"{w.first_step}-{w.last_step}",
                      "-" if w is None else f"{w.sigma_hi:.4g} .. {w.sigma_lo:.4g}",
                      Cell(fmt_score(r.fid), "score"), Cell(f"{r.change:+.4g}", "change"),
                      fmt_change(r.relative_change), interval]))
    parts = [paragraph(f"The schedule applied at every level, and within one window of "
                       f"consecutive levels at a time (step i evaluates the network at t_i), "
                       f"against the untuned baseline, scored on the metric the windows "
                       f"command was given; {rows[0].n_samples} images, the same seeds for "
                       f"every run."),
             table(f"windows-table{key}", ["run", "levels", "sigma", "score", "change",
                                     "relative", "95% interval"], body)]
    if all(r.change_interval is None for r in rows):
        parts.append(note("no intervals: each change is one paired difference on common "
                          "seeds, without a confidence interval"))
    png = folder / WINDOWS_PNG
    parts.append(figure(save_windows(rows, folder) if not png.is_file() else png,
                        "score change per noise window against sigma; the dashed line is the "
                        "schedule at every level"))
    return section(f"windows{key}", f"Noise windows: where the schedule helps{named}", *parts)


def loss_section(folder: Path, study_folder: Path | None = None) -> str:
    """The denoising-loss analysis of ``folder/loss.csv``, or nothing if it was not run."""
    key, named = suffix(folder, study_folder or folder)
    path = folder / LOSS_CSV
    if not path.is_file():
        return ""
    rows = read_loss_csv(path)
    body = [({"data-sigma": repr(r.sigma)},
             [f"{r.sigma:.4g}", f"{r.pixel_untuned:.5g}", f"{r.pixel_tuned:.5g}",
              Cell(f"{r.pixel_ratio:.4f}", "pixel-ratio"), f"{r.feature_untuned:.5g}",
              f"{r.feature_tuned:.5g}", Cell(f"{r.feature_ratio:.4f}", "feature-ratio")])
            for r in rows]
    png = folder / LOSS_PNG
    return section(
        f"loss{key}", f"Denoising loss: pixel space and feature space{named}",
        paragraph(f"Denoising loss of the network with and without the schedule on "
                  f"{rows[0].n_images} reference images, the same noise for both: EDM's "
                  "weighted L2 in pixel space, and the squared distance between the feature "
                  "network's features of the denoised and the clean image."),
        table(f"loss-table{key}", ["sigma", "pixel untuned", "pixel tuned", "pixel ratio",
                             "feature untuned", "feature tuned", "feature ratio"], body),
        figure(save_loss(rows, folder) if not png.is_file() else png,
               "tuned / untuned loss against sigma, pixel and feature space"))
