"""The chapters of the book, in order: the Markdown pages of mkdocs.yml's `nav`.

tangle.py runs before anything is installed, so it cannot use PyYAML. It reads the one kind
of YAML that a nav is written in, a block list of `- Title: page.md` items, and refuses what
it cannot read rather than guess: a nav it misread would make the package lose files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .markdown import TangleError, TangleErrors

CONFIG = "mkdocs.yml"
ITEM_RE = re.compile(r"^\s*-\s+(?P<item>.*)$")


@dataclass(frozen=True)
class Nav:
    docs_dir: str
    line: int  # of the `nav:` key; 0 when there is none
    entries: list[tuple[int, str]]  # (line in mkdocs.yml, target) of every page or link


def nav_pages(root: Path) -> list[Path]:
    """The Markdown pages of mkdocs.yml's nav, in book order (notebooks and links left out)."""
    nav = read_config(root)
    pages = [root / nav.docs_dir / entry for _, entry in nav.entries if entry.endswith(".md")]
    return list(dict.fromkeys(pages))


def book_pages(root: Path) -> list[Path]:
    """nav_pages, each of which must exist; TangleErrors for a missing page or an empty nav."""
    nav = read_config(root)
    errors = [TangleError(CONFIG, line, f"the nav names {entry}, but there is no "
                          f"{nav.docs_dir}/{entry}: correct the entry or add the chapter")
              for line, entry in nav.entries
              if entry.endswith(".md") and not (root / nav.docs_dir / entry).is_file()]
    if errors:
        raise TangleErrors(errors)
    pages = nav_pages(root)
    if not pages:
        raise TangleError(CONFIG, nav.line or 1, "no chapters found: the nav lists no "
                          "Markdown page (write it as '- Title: page.md' lines)")
    return pages


def pages_outside_nav(root: Path) -> list[str]:
    """Markdown pages of docs_dir that the nav leaves out: their code is not tangled."""
    docs = root / read_config(root).docs_dir
    listed = set(nav_pages(root))
    return [page.relative_to(root).as_posix() for page in sorted(docs.rglob("*.md"))
            if page not in listed and not any(p.startswith(".") for p in page.parts)]


def read_config(root: Path) -> Nav:
    config = root / CONFIG
    if not config.exists():
        raise TangleError(CONFIG, 1, f"no {CONFIG} in {root}")
    return read_nav(config.read_text(encoding="utf-8"))


def read_nav(text: str) -> Nav:
    """docs_dir and the nav's entries, from the simple YAML that a nav is written in."""
    docs_dir, entries, nav_line, in_nav = "docs", [], 0, False
    for number, raw in enumerate(text.splitlines(), 1):
        line = strip_yaml_comment(raw).rstrip()
        if not line.strip():
            continue
        if not line[0].isspace() and not line.startswith("-"):  # a top-level key ends the nav
            key, _, value = (part.strip() for part in line.partition(":"))
            in_nav, nav_line = key == "nav", number if key == "nav" else nav_line
            if in_nav and value:
                raise flow_style(number, line)
            if key == "docs_dir":
                docs_dir = unquote(value)
        elif in_nav and re.match(r"^[\s-]*[\[{]", line):
            raise flow_style(number, line)
        elif in_nav and (entry := nav_entry(line)):
            if entry[:1] in "[{":
                raise flow_style(number, line)
            entries.append((number, entry))
    return Nav(docs_dir, nav_line, entries)


def flow_style(number: int, line: str) -> TangleError:
    return TangleError(CONFIG, number, f"tangle.py cannot read a nav in YAML flow style "
                       f"('{line.strip()[:40]}'): write one '- Title: page.md' line per page")


def strip_yaml_comment(line: str) -> str:
    """The line without a trailing '# comment' ('#' inside quotes is kept)."""
    quote = None
    for i, char in enumerate(line):
        if char in "\"'" and quote in (None, char):
            quote = None if quote else char
        elif char == "#" and quote is None and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def nav_entry(line: str) -> str | None:
    """The target of a nav item ('- Title: page.md' or '- page.md'); None for a section."""
    match = ITEM_RE.match(line)
    if not match:
        return None
    item = match["item"].strip()
    if item[:1] in "\"'" and (end := item.find(item[0], 1)) > 0:
        rest = item[end + 1 :].strip()
        value = rest[1:].strip() if rest.startswith(":") else item
    else:
        _, sep, value = item.partition(": ")
        value = value if sep else item
    value = unquote(value.strip())
    return value if value and not value.endswith(":") and "://" not in value else None


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value
