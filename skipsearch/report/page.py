"""HTML building blocks: escaped text, tables, sections and figures embedded as data URIs."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; }
tr.pruned td { color: #888; } tr.baseline td { background: #f8f8ff; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: 600; } dd { margin: 0; }
figure { margin: 0.5em 0; } figure img { max-width: 100%; image-rendering: pixelated; }
figcaption { font-size: 0.85em; color: #555; }
.grids { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
.note { background: #fff8e0; border-left: 4px solid #e0b000; padding: 0.4em 0.8em; }
"""


def esc(value: object) -> str:
    """Text (of any value) escaped for HTML content and attribute values."""
    return html.escape(str(value), quote=True)


def fmt_score(value: float | None) -> str:
    """A score as the report prints it (four significant digits, like the sweep's table)."""
    return "-" if value is None else f"{value:.4g}"


def fmt_change(change: float | None) -> str:
    """A relative change in percent with its sign; '-' if none."""
    return "-" if change is None else f"{100 * change:+.1f}%"


def fmt_params(params: Mapping[str, object]) -> str:
    """``name=value`` pairs, floats to four significant digits."""
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in params.items())


@dataclass(frozen=True)
class Cell:
    """One table cell: its text and an optional CSS class."""

    text: object
    cls: str = ""


def cell_html(cell: Cell | object, tag: str = "td") -> str:
    """A <td> (or <th>) with escaped text."""
    if not isinstance(cell, Cell):
        cell = Cell(cell)
    cls = f' class="{esc(cell.cls)}"' if cell.cls else ""
    return f"<{tag}{cls}>{esc(cell.text)}</{tag}>"


def table(table_id: str, headers: Sequence[str],
          rows: Iterable[tuple[Mapping[str, str], Sequence[Cell | object]]]) -> str:
    """A table; each row is (attributes of its <tr>, cells), all escaped."""
    head = "".join(cell_html(h, "th") for h in headers)
    body = []
    for attrs, cells in rows:
        attr = "".join(f' {esc(k)}="{esc(v)}"' for k, v in attrs.items())
        body.append(f"<tr{attr}>{''.join(cell_html(c) for c in cells)}</tr>")
    return (f'<table id="{esc(table_id)}"><thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{chr(10).join(body)}\n</tbody></table>")


def paragraph(text: str, cls: str = "") -> str:
    """A <p> of escaped text."""
    return f'<p class="{esc(cls)}">{esc(text)}</p>' if cls else f"<p>{esc(text)}</p>"


def note(text: str) -> str:
    """A highlighted remark (a figure that was skipped, and why)."""
    return paragraph(text, "note")


def definitions(items: Mapping[str, object]) -> str:
    """A <dl> of escaped terms and values."""
    pairs = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items.items())
    return f"<dl>{pairs}</dl>"


def data_uri(path: Path) -> str:
    """The PNG file as a base64 data: URI."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def figure(path: Path, caption: str) -> str:
    """The PNG embedded as a data URI, captioned with a link to the file next to the page."""
    return (f'<figure><img src="{data_uri(path)}" alt="{esc(caption)}">'
            f'<figcaption>{esc(caption)} (<a href="{esc(path.name)}">{esc(path.name)}</a>)'
            "</figcaption></figure>")


def section(section_id: str, title: str, *parts: str) -> str:
    """A <section> with an id and a heading around already-built HTML parts."""
    body = "\n".join(parts)
    return f'<section id="{esc(section_id)}">\n<h2>{esc(title)}</h2>\n{body}\n</section>'


def document(title: str, *parts: str) -> str:
    """A complete HTML page with inline CSS and no scripts or external resources."""
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"<h1>{esc(title)}</h1>\n{body}\n</body>\n</html>\n")
