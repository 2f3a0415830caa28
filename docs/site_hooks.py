"""MkDocs hooks of the documentation site: the pages that are generated from the project.

``on_files`` adds, as in-memory files that MkDocs writes into the built site only:

- ``reference/cli.md`` from ``skipsearch.cli.USAGE`` and the command names;
- ``reference/config.md`` from every YAML file under ``conf/`` and ``sweeps/``;
- ``architecture.md`` from ``docs/ARCHITECTURE.md``;
- the figures ``docs/*.png`` as ``images/*.png`` and the notebook ``docs/python_api.ipynb``.

Nothing is written into the source tree, and nothing is downloaded.
"""

from __future__ import annotations

import html
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONF = ROOT / "conf"
SWEEPS = ROOT / "sweeps"
ARCHITECTURE = DOCS / "ARCHITECTURE.md"
NOTEBOOK = DOCS / "python_api.ipynb"

# A YAML key line: indentation, key, the rest (value and comment).
KEY_LINE = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)\s*:(?:\s+|$)(?P<rest>.*)$")
CODE_SPAN = re.compile(r"`([^`]+)`")

# Pages that say more about a command, as linked from reference/cli.md (checked by
# `mkdocs build --strict`).
COMMAND_GUIDES = {
    "sweep": ("../quickstart.md#run-the-default-sweep", "Quickstart: the default sweep"),
    "export": ("../quickstart.md#export-sample-inspect", "Quickstart: export, sample, inspect"),
    "sample": ("../quickstart.md#export-sample-inspect", "Quickstart: export, sample, inspect"),
    "inspect": ("../quickstart.md#export-sample-inspect", "Quickstart: export, sample, inspect"),
    "report": ("../quickstart.md#report-and-dashboard", "Quickstart: report and dashboard"),
    "dashboard": ("../quickstart.md#report-and-dashboard", "Quickstart: report and dashboard"),
    "refstats": ("../concepts.md#metrics", "Concepts: metrics"),
    "windows": ("config.md#conf-config", "the windows.* keys of conf/config.yaml"),
    "analyze": ("config.md#conf-config", "the analyze.* keys of conf/config.yaml"),
    "train-toy": ("config.md#conf-train_toy", "conf/train_toy.yaml"),
    "studies": ("../quickstart.md#find-a-sweep-again", "Quickstart: find a sweep again"),
    "show": ("../quickstart.md#find-a-sweep-again", "Quickstart: find a sweep again"),
    "compare": ("../quickstart.md#find-a-sweep-again", "Quickstart: find a sweep again"),
}


# --- YAML files, line by line -------------------------------------------------------------


@dataclass
class Entry:
    """One line of a YAML file: a key (dotted), a list item, or a comment line of its own."""

    kind: str  # "key", "item" or "note"
    key: str = ""
    value: str = ""
    comment: str = ""


@dataclass
class YamlFile:
    """A config file as written: its leading comment, its defaults list, its other lines."""

    header: list[str] = field(default_factory=list)  # comment text, one leading space removed
    defaults: list[Entry] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)


def split_comment(code: str) -> tuple[str, str]:
    """A line's YAML and its trailing ``# comment``: a ``#`` outside quotes after a blank."""
    quote = None
    for i, char in enumerate(code):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or code[i - 1] in " \t"):
            return code[:i].rstrip(), code[i + 1:].strip()
    return code.rstrip(), ""


def joined(first: str, more: str) -> str:
    """Two comment fragments as one text."""
    return f"{first} {more}".strip()


def parse_yaml(text: str) -> YamlFile:
    """The keys of a config file with their values and comments, in file order.

    Nested keys are dotted; a comment line indented deeper than the key line before it
    continues that key's comment; other comment lines are notes of their own (consecutive
    ones one note).
    """
    parsed = YamlFile()
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing keys
    last: Entry | None = None  # the entry a deeper comment line continues
    last_indent = -1
    started = False
    for raw in text.splitlines():
        stripped = raw.strip()
        indent = len(raw) - len(raw.lstrip(" "))
        if not stripped:
            last = None
            continue
        if stripped.startswith("#"):
            comment = stripped[1:]
            comment = comment[1:] if comment.startswith(" ") else comment
            if not started:
                if not comment.startswith("@package"):
                    parsed.header.append(comment.rstrip())
            elif last is not None and (indent > last_indent or last.kind == "note"):
                last.comment = joined(last.comment, comment.strip())
            else:
                last, last_indent = Entry("note", comment=comment.strip()), indent
                parsed.entries.append(last)
            continue
        started = True
        code, comment = split_comment(stripped)
        while stack and stack[-1][0] >= indent and not code.startswith("- "):
            stack.pop()
        if code.startswith("- "):
            parent = ".".join(k for _, k in stack)
            entry = Entry("item", parent, code[2:].strip(), comment)
            (parsed.defaults if parent == "defaults" else parsed.entries).append(entry)
        else:
            match = KEY_LINE.match(code)
            if match is None:
                raise ValueError(f"cannot read this line as a YAML key: {raw!r}")
            key = match["key"]
            stack.append((indent, key))
            dotted = ".".join(k for _, k in stack)
            entry = Entry("key", dotted, match["rest"].strip(), comment)
            if dotted != "defaults":
                parsed.entries.append(entry)
        last, last_indent = entry, indent
    return parsed


# --- HTML and Markdown pieces -------------------------------------------------------------


def text_html(text: str) -> str:
    """Plain text as HTML, with its `code spans` as <code>."""
    return CODE_SPAN.sub(r"<code>\1</code>", html.escape(text, quote=False))


def code_html(text: str) -> str:
    """A value or key as <code>, or nothing."""
    return f"<code>{html.escape(text, quote=False)}</code>" if text else ""


def table_html(head: list[str], rows: list[list[str]]) -> str:
    """An HTML table (cells already HTML), as a block of its own in Markdown."""
    lines = ["<table>", "<thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead>",
             "<tbody>"]
    lines += ["<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows]
    return "\n".join([*lines, "</tbody>", "</table>", ""])


def header_markdown(lines: list[str]) -> str:
    """A leading comment as paragraphs (HTML) and its indented lines as a shell block."""
    out: list[str] = []
    prose: list[str] = []
    code: list[str] = []

    def flush() -> None:
        if prose:
            out.append(f"<p>{text_html(' '.join(prose))}</p>\n")
            prose.clear()
        if code:
            out.append("```bash\n" + "\n".join(code) + "\n```\n")
            code.clear()

    for line in lines:
        if line.startswith("  "):
            if prose:
                flush()
            code.append(line[2:])
        else:
            if code:
                flush()
            prose.append(line.strip())
    flush()
    return "\n".join(out)


def entries_table(parsed: YamlFile, prefix: str, value_head: str) -> str:
    """Key, value and comment of every line, in file order; notes as rows of their own.

    A key that only holds others (no value) is left out unless it carries a comment.
    """
    rows = []
    for entry in parsed.entries:
        if entry.kind == "key" and not entry.value and not entry.comment:
            continue
        if entry.kind == "note":
            rows.append(["", "", f"<em>{text_html(entry.comment)}</em>"])
            continue
        key = f"{prefix}{entry.key}" if entry.key else prefix.rstrip(".")
        if entry.kind == "item":
            rows.append([code_html(key), code_html(f"- {entry.value}"), text_html(entry.comment)])
        else:
            rows.append([code_html(key), code_html(entry.value), text_html(entry.comment)])
    if not rows:
        return ""
    return table_html(["key", value_head, "comment"], rows)


def defaults_markdown(parsed: YamlFile) -> str:
    """A file's defaults list: a table where its entries carry comments, else one line."""
    if not parsed.defaults:
        return ""
    if any(e.comment for e in parsed.defaults):
        rows = [[code_html(e.value), text_html(e.comment)] for e in parsed.defaults]
        return "Defaults list:\n\n" + table_html(["entry", "comment"], rows)
    items = ", ".join(f"`{e.value}`" for e in parsed.defaults)
    return f"Defaults list: {items}.\n"


# --- reference/config.md ------------------------------------------------------------------


def group_order(primary: YamlFile) -> tuple[list[str], dict[str, str]]:
    """The config groups in the order of conf/config.yaml's defaults list, and their defaults."""
    order, chosen = [], {}
    for entry in primary.defaults:
        group, sep, choice = entry.value.partition(":")
        if sep and group.strip() in {p.name for p in CONF.iterdir() if p.is_dir()}:
            order.append(group.strip())
            chosen[group.strip()] = choice.strip()
    rest = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in order)
    return [*order, *rest], chosen


def file_section(path: Path, title: str, anchor: str, prefix: str, note: str = "",
                 value_head: str = "default") -> str:
    """One YAML file: heading, leading comment, defaults list, the table of its keys."""
    parsed = parse_yaml(path.read_text())
    parts = [f"### {title} {{#{anchor}}}\n", header_markdown(parsed.header)]
    if note:
        parts.append(note + "\n")
    parts += [defaults_markdown(parsed), entries_table(parsed, prefix, value_head)]
    return "\n".join(p for p in parts if p)


def config_page() -> str:
    """Every file of conf/ grouped by config group, then the ready sweeps and presets."""
    primary = parse_yaml((CONF / "config.yaml").read_text())
    groups, chosen = group_order(primary)
    out = [
        "# Configuration\n",
        "This page is generated from the YAML files under `conf/` and `sweeps/` each time the "
        "site is built: every key with its default and the comment written beside it, in the "
        "order of the file. Nested keys are joined with dots; a key of a group file carries "
        "the group's name (`search.n_trials` is `n_trials` in `conf/search/tpe.yaml`).\n",
        "Any key can be overridden on the command line, `skipsearch sweep search.n_trials=40`, "
        "and another file of a group selected by its name, `skipsearch sweep search=random`. "
        "`???` marks a value that must be given; `${...}` is an interpolation of another key. "
        "A defaults list names the files a config is composed from, in order; `_self_` is the "
        "file's own keys. `skipsearch sweep --cfg job` prints the composed config.\n",
        "## Primary configs {#primary}\n",
    ]
    primaries = sorted(CONF.glob("*.yaml"), key=lambda p: (p.name != "config.yaml", p.name))
    for path in primaries:
        out.append(file_section(path, f"conf/{path.name}", f"conf-{path.stem}", ""))
    for group in groups:
        files = sorted((CONF / group).glob("*.yaml"),
                       key=lambda p, g=group: (p.stem != chosen.get(g), p.stem))
        options = [p.stem for p in files if not p.stem.startswith("_")]
        out.append(f"## {group} {{#{group}}}\n")
        line = f"Options: {', '.join(f'`{group}={o}`' for o in options)}."
        if group in chosen:
            line += f" The default is `{chosen[group]}`."
        out.append(line + "\n")
        for path in files:
            note = ("Selected by default." if path.stem == chosen.get(group) else "")
            if path.stem.startswith("_"):
                note = f"Not an option: the files that list `{path.stem}` in their defaults " \
                       "list include it."
            out.append(file_section(path, f"{group}/{path.name}", f"{group}-{path.stem}",
                                    f"{group}.", note))
    out.append(sweeps_section())
    return "\n".join(out)


def sweeps_section() -> str:
    """The ready sweeps and presets of sweeps/: their leading comment and what they set."""
    out = [
        "## Ready sweeps and presets {#sweeps}\n",
        "`sweeps` is a list applied in order after the groups: a ready sweep, then presets that "
        "add to it, e.g. `skipsearch sweep 'sweeps=[digits,pruning]'`; `sweeps=[digits]` is "
        "the default. Their keys are global (full dotted names), and `override /GROUP: NAME` "
        "in a defaults list selects a file of a group.\n",
    ]
    for path in sorted(SWEEPS.glob("*.yaml"), key=lambda p: (p.stem != "digits", p.stem)):
        out.append(file_section(path, f"sweeps/{path.name}", f"sweeps-{path.stem}", "",
                                value_head="value"))
    return "\n".join(out)


# --- reference/cli.md ---------------------------------------------------------------------


def usage_lines(usage: str, names: list[str]) -> dict[str, list[list[str]]]:
    """Each command's lines of the usage text: [the command as typed, what it does]."""
    found: dict[str, list[list[str]]] = {name: [] for name in names}
    current: list[str] | None = None
    for line in usage.splitlines():
        body = line.strip()
        first = body.split(" ", 1)[0]
        if line.startswith("  ") and not line.startswith("   ") and first in found:
            rest = body[len(first):]
            args, gap, about = rest.strip().partition("  ")
            if not gap:  # no arguments: the rest is what it does
                args, about = "", rest
            current = [f"{first} {args.strip()}".strip(), about.strip()]
            found[first].append(current)
        elif current is not None and line.startswith("     ") and body:
            current[1] = joined(current[1], body)
        else:
            current = None
    return found


def cli_page() -> str:
    """The usage text as the command prints it, and a section per command."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from skipsearch import cli

    names = [*cli.COMMANDS, *getattr(cli, "TOOLS", ())]
    lines = usage_lines(cli.USAGE, names)
    rows = [[f'<a href="#{name}"><code>{html.escape(typed)}</code></a>', text_html(about)]
            for name in names for typed, about in lines[name]]
    out = [
        "# Command line\n",
        "This page is generated from the usage text of the `skipsearch` command "
        "(`skipsearch.cli.USAGE`) each time the site is built. `skipsearch`, "
        "`skipsearch --help` and `skipsearch help` print it; `skipsearch --version` prints "
        "the version. Every command's settings are the keys of the "
        "[configuration](config.md).\n",
        "```text\n" + cli.USAGE + "\n```\n",
        "## Commands {#commands}\n",
        table_html(["command", "what it does"], rows),
    ]
    for name in names:
        out.append(f"## {name} {{#{name}}}\n")
        for typed, about in lines[name]:
            out.append(f"<p><code>skipsearch {html.escape(typed)}</code>"
                       + (f": {text_html(about)}" if about else "") + "</p>\n")
        if name in COMMAND_GUIDES:
            link, title = COMMAND_GUIDES[name]
            out.append(f"See [{title}]({link}).\n")
    return "\n".join(out)


# --- hooks --------------------------------------------------------------------------------


def on_files(files: Files, config) -> Files:
    """Add the generated pages, the architecture page, the figures and the notebook."""
    pages = {
        "reference/cli.md": cli_page(),
        "reference/config.md": config_page(),
        "architecture.md": ARCHITECTURE.read_text(),
    }
    for uri, content in pages.items():
        files.append(File.generated(config, uri, content=content))
    for png in sorted(DOCS.glob("*.png")):
        files.append(File.generated(config, f"images/{png.name}", abs_src_path=str(png)))
    files.append(File.generated(config, NOTEBOOK.name, abs_src_path=str(NOTEBOOK)))
    return files


def on_serve(server, config, builder):
    """`mkdocs serve` rebuilds when a source of a generated page changes."""
    for path in (CONF, SWEEPS, ARCHITECTURE, ROOT / "skipsearch" / "cli"):
        server.watch(str(path))
    return server
