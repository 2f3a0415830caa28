"""``skipsearch report``: one self-contained HTML page (and its PNGs) about a study.

``data`` turns the study into plain rows, ``figures`` draws them with matplotlib (Agg),
``samples`` draws the sample grids of the baseline and the best schedule per NFE, and ``page``
writes the HTML with every PNG embedded as a data URI.
"""

from __future__ import annotations

from .build import write_report

__all__ = ["write_report"]
