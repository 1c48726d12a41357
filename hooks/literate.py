"""MkDocs hook that shows the book as a literate program.

The chapters hold the package's source as named code blocks, which ``tangle.py`` extracts.
This hook reads the blocks with tangle's own parser and, on the site:

* gives every named or file block a title bar: its chunk name, ``≡`` for a definition or
  ``+≡`` for a continuation, and the file it ends up in;
* gives every block its own HTML id: the chunk name for the definition, ``name-2``,
  ``name-3``, ... for continuations, ``file-minigpt-x-py`` for an unnamed file block;
* turns every ``<<reference>>`` line inside code into a link to the chunk's definition,
  on whichever page it is;
* writes under each block where it is continued and where it is used;
* fills the index of chunks (the ``<!-- chunk-index -->`` placeholder of ``chunks.md``);
* serves MathJax from the site itself (fetched by ``scripts/fetch_mathjax.py``), so that
  math is typeset without a network.
"""

from __future__ import annotations

import html
import logging
import os
import posixpath
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.nav import Navigation
from mkdocs.structure.pages import Page
from mkdocs.utils import get_relative_url

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import tangle  # noqa: E402  (tangle.py sits at the repository root)

log = logging.getLogger(f"mkdocs.hooks.{__name__}")

INDEX_PLACEHOLDER = "<!-- chunk-index -->"
MATHJAX_URI = "javascripts/mathjax"
MATHJAX_ENTRY = "tex-mml-chtml.js"
FETCH_COMMAND = "python scripts/fetch_mathjax.py"

BRACES_RE = re.compile(r"\{(?P<attrs>[^}]*)\}\s*$")
DIV_RE = re.compile(r"<div\b|</div>")
TITLE_RE = re.compile(r'<span class="filename">[^<]*</span>')
TAG_RE = re.compile(r"<[^>]+>")
# One line of a highlighted block (pymdownx.highlight with line_spans and anchor_linenums).
LINE_RE = re.compile(
    r'(?P<head><span id="__span-[^"]*">(?:<a [^>]*></a>)?)(?P<code>.*?)(?P<tail>\n?</span>)'
    r'(?=<span id="__span-|</code>)'
)


@dataclass
class Chunk:
    """One named or file block of the book, and where it lives on the site."""

    block: tangle.Block
    page: Page
    key: str  # the chunk's name; the file's path for an unnamed file block
    part: int  # 1 for the definition, 2, 3, ... for its continuations
    anchor: str = ""

    @property
    def label(self) -> str:
        """How the chunk is named in text: ⟨name⟩, or the bare path of an unnamed file block."""
        return f"⟨{self.key}⟩" if self.block.name else self.key


@dataclass
class Use:
    """A ``<<reference>>`` to a chunk: the block that holds it and its line in the block."""

    user: Chunk
    line: int


@dataclass
class Book:
    """Every chunk of the book's nav pages, in reading order, with its uses."""

    chunks: list[Chunk]
    parts: dict[str, list[Chunk]] = field(default_factory=dict)
    uses: dict[str, list[Use]] = field(default_factory=dict)
    _files: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for chunk in self.chunks:
            self.parts.setdefault(chunk.key, []).append(chunk)
            for number, line in enumerate(chunk.block.body, start=1):
                if match := tangle.REFERENCE_RE.match(line):
                    self.uses.setdefault(match["name"], []).append(Use(chunk, number))

    def on_page(self, page: Page) -> list[Chunk]:
        return [chunk for chunk in self.chunks if chunk.page.file is page.file]

    def files_of(self, key: str) -> list[str]:
        """The files a chunk ends up in: its own, or those of the chunks that use it."""
        if key not in self._files:
            self._files[key] = []  # ends a cycle of references (tangle.py reports those)
            found = {c.block.file for c in self.parts.get(key, []) if c.block.file}
            for use in self.uses.get(key, []):
                found.update(self.files_of(use.user.key))
            self._files[key] = sorted(found)
        return self._files[key]


_book: Book | None = None


# ---------------------------------------------------------------------------- the chunk map


def parse(page: Page, markdown: str) -> list[tangle.Block]:
    """The page's named and file blocks, read by tangle.py's own parser."""
    path = page.file.abs_src_path or page.file.src_uri
    if Path(path).is_relative_to(ROOT):
        path = Path(path).relative_to(ROOT).as_posix()
    return tangle.parse_markdown(path, markdown)


def read_chunks(pages: list[Page]) -> list[Chunk]:
    """Parse every page; number each chunk's parts in reading order."""
    chunks: list[Chunk] = []
    count: dict[str, int] = {}
    for page in pages:
        for block in parse(page, page.file.content_string):
            key = block.name or block.file
            if not key:
                continue
            count[key] = count.get(key, 0) + 1
            chunks.append(Chunk(block, page, key, count[key]))
    return chunks


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


def assign_anchors(chunks: list[Chunk]) -> None:
    """Give each block a unique id: name, name-2, name-3, ...; file-PATH for file blocks."""
    base = {c.key: c.block.name or f"file-{slug(c.key)}" for c in chunks}
    taken = {base[c.key] for c in chunks if c.part == 1}
    for chunk in chunks:
        if chunk.part == 1:
            chunk.anchor = base[chunk.key]
            continue
        anchor = f"{base[chunk.key]}-{chunk.part}"
        while anchor in taken:
            anchor = f"{anchor}-cont"
        chunk.anchor = anchor
        taken.add(anchor)


def on_nav(nav: Navigation, config: MkDocsConfig, files: Files) -> Navigation:
    """Build the map of all chunks before any page is rendered."""
    global _book
    pages = [page for page in nav.pages if page.file.src_uri.endswith(".md")]
    try:
        chunks = read_chunks(pages)
    except tangle.TangleError as error:
        raise PluginError(f"literate hook: {error}") from error
    assign_anchors(chunks)
    _book = Book(chunks)
    return nav


def book() -> Book:
    if _book is None:
        raise PluginError("literate hook: the chunk map was not built (on_nav did not run)")
    return _book


# ------------------------------------------------------------------------------ the markdown


def title_of(chunk: Chunk, book: Book) -> str:
    """The plain-text title bar; on_page_content turns it into links."""
    operator = "≡" if chunk.part == 1 else "+≡"
    files = [f for f in book.files_of(chunk.key) if f != chunk.key]
    arrow = f" → {', '.join(files)}" if files else ""
    return f"{chunk.label} {operator}{arrow}".replace('"', "'")


def fence_attrs(old: str, chunk: Chunk, book: Book) -> str:
    """The new {...} of a chunk's fence: its anchor, a title, line numbers, other attributes."""
    kept = [a for a in old.split() if not a.startswith(("#", "file=", "title=", "linenums="))]
    mine = [f"#{chunk.anchor}", ".chunk", f'title="{title_of(chunk, book)}"', 'linenums="1"']
    return "{" + " ".join(mine + kept) + "}"


def rewrite_fences(markdown: str, page: Page, book: Book) -> str:
    """Put each chunk's anchor and title into its fence's braces."""
    chunks = book.on_page(page)
    blocks = [b for b in parse(page, markdown) if b.name or b.file]
    if len(blocks) != len(chunks):
        log.warning(f"{page.file.src_uri}: {len(blocks)} chunks now, {len(chunks)} in the map")
        return markdown
    lines = markdown.split("\n")
    for block, chunk in zip(blocks, chunks, strict=True):
        index = block.fence_line - 1
        match = BRACES_RE.search(lines[index])
        if match is None:
            log.warning(f"{page.file.src_uri}:{block.fence_line}: no {{...}} on this fence")
            continue
        new = fence_attrs(match["attrs"], chunk, book)
        lines[index] = lines[index][: match.start()] + new
    return "\n".join(lines)


def escape_md(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", text)


def chapter_link(chunk: Chunk, here: Page) -> str:
    """A markdown link to the chapter of a chunk (mkdocs checks these)."""
    page = chunk.page.file.src_uri
    target = posixpath.relpath(page, posixpath.dirname(here.file.src_uri) or ".")
    return f"[{escape_md(chunk.page.title or page)}]({target})"


def html_link(text: str, chunk: Chunk, here: Page, code: bool = False) -> str:
    """A raw <a> for the index: mkdocs cannot check links to code blocks (see tests)."""
    text = html.escape(text).replace("_", "&#95;").replace("*", "&#42;")  # no emphasis
    if code:
        text = f"<code>{text}</code>"
    return f'<a href="{href(chunk, here)}">{text}</a>'


def index_row(key: str, here: Page, book: Book) -> str:
    """One chunk of the index: name, chapters (definition, continuations), users, files."""
    first, *later = book.parts[key]
    defined = [chapter_link(first, here)]
    defined += [html_link(f"+≡ {c.page.title or c.page.file.src_uri}", c, here) for c in later]
    cells = [
        html_link(first.label, first, here),
        "<br>".join(defined),
        ", ".join(html_link(u.user.label, u.user, here) for u in book.uses.get(key, [])),
        "<br>".join(f"`{f}`" for f in book.files_of(key)),
    ]
    return "| " + " | ".join(cells) + " |"


def index_table(header: list[str], rows: list[str]) -> list[str]:
    return [
        '<div class="chunk-index" markdown="1">',
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
        *rows,
        "",
        "</div>",
        "",
    ]


def chunk_index(here: Page, book: Book) -> str:
    """The markdown of the index: the files, then every chunk in alphabetical order."""
    roots = sorted({c.block.file: c for c in reversed(book.chunks) if c.block.file}.items())
    files = [
        f"| {html_link(path, chunk, here, code=True)} | "
        f"{html_link(chunk.label, chunk, here) if chunk.block.name else ''} | "
        f"{chapter_link(chunk, here)} |"
        for path, chunk in roots
    ]
    named = sorted({c.key for c in book.chunks if c.block.name}, key=str.lower)
    chunks = [index_row(key, here, book) for key in named]
    return "\n".join(
        ["## Files", ""]
        + index_table(["File", "Root chunk", "Chapter"], files)
        + ["## Chunks", ""]
        + index_table(["Chunk", "Defined in", "Used in", "File"], chunks)
    )


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if INDEX_PLACEHOLDER in markdown:
        markdown = markdown.replace(INDEX_PLACEHOLDER, chunk_index(page, book()))
    if book().on_page(page):
        markdown = rewrite_fences(markdown, page, book())
    return markdown


# ---------------------------------------------------------------------------------- the HTML


def href(chunk: Chunk, here: Page, line: int | None = None) -> str:
    """A link from page `here` to a chunk's block, or to one of its lines."""
    anchor = chunk.anchor if line is None else f"__codelineno-{chunk.anchor}-{line}"
    if chunk.page.file is here.file:
        return f"#{anchor}"
    return f"{get_relative_url(chunk.page.file.url, here.file.url)}#{anchor}"


def link(chunk: Chunk, here: Page, text: str, line: int | None = None) -> str:
    where = ""
    if chunk.page.file is not here.file:
        where = f" ({html.escape(chunk.page.title or chunk.page.file.src_uri)})"
    return f'<a href="{href(chunk, here, line)}">{html.escape(text)}</a>{where}'


def enumerate_words(items: list[str]) -> str:
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def notes(chunk: Chunk, here: Page, book: Book) -> str:
    """The sentences under a block: where it is continued, defined, used, written."""
    parts, uses = book.parts[chunk.key], book.uses.get(chunk.key, [])
    sentences = []
    if chunk.part > 1:
        first = parts[0]
        name = f'<a href="{href(first, here)}">{html.escape(first.label)}</a>'
        where = "above"
        if first.page.file is not here.file:
            where = f"in {html.escape(first.page.title or first.page.file.src_uri)}"
        sentences.append(f"This code continues {name}, defined {where}.")
    elif len(parts) > 1:
        later = [link(c, here, f"{c.label} part {c.part}") for c in parts[1:]]
        sentences.append(f"This code is continued in {enumerate_words(later)}.")
    if uses:
        users = [link(u.user, here, u.user.label, u.line) for u in uses]
        sentences.append(f"This code is used in {enumerate_words(users)}.")
    elif chunk.block.file and chunk.part == 1:
        sentences.append(f"This code is written to <code>{html.escape(chunk.block.file)}</code>.")
    elif not book.files_of(chunk.key):
        sentences.append("This code is not used.")
    return f'<p class="chunk-notes">{" ".join(sentences)}</p>'


def title_html(chunk: Chunk, here: Page, book: Book) -> str:
    first = book.parts[chunk.key][0]
    name = f'<a class="chunk-name" href="{href(first, here)}">{html.escape(chunk.label)}</a>'
    operator = "≡" if chunk.part == 1 else "+≡"
    files = [f for f in book.files_of(chunk.key) if f != chunk.key]
    where = ""
    if files:
        paths = ", ".join(f"<code>{html.escape(f)}</code>" for f in files)
        where = f' <span class="chunk-file">→ {paths}</span>'
    return f'<span class="filename">{name} <span class="chunk-op">{operator}</span>{where}</span>'


def link_line(match: re.Match[str], here: Page, book: Book) -> str:
    """One code line: if it is a <<reference>>, make the reference a link."""
    text = html.unescape(TAG_RE.sub("", match["code"]))
    ref = tangle.REFERENCE_RE.match(text)
    if ref is None:
        return match.group()
    name = ref["name"]
    if name not in book.parts:
        log.warning(f"{here.file.src_uri}: <<{name}>> is used but never defined")
        return match.group()
    target = href(book.parts[name][0], here)
    anchor = f'<a class="chunk-ref" href="{target}">{html.escape(f"<<{name}>>")}</a>'
    code = f"{html.escape(ref['indent'])}{anchor}{html.escape(text[ref.end('name') + 2 :])}"
    return f"{match['head']}{code}{match['tail']}"


def block_extent(page_html: str, anchor: str) -> tuple[int, int] | None:
    """Where the <div id=anchor ...> of a highlighted block starts and ends."""
    start = page_html.find(f'<div id="{anchor}" ')
    if start < 0:
        return None
    depth = 0
    for match in DIV_RE.finditer(page_html, start):
        depth += 1 if match.group() == "<div" else -1
        if depth == 0:
            return start, match.end()
    return None


def decorate(block_html: str, chunk: Chunk, here: Page, book: Book) -> str:
    block_html = TITLE_RE.sub(lambda _: title_html(chunk, here, book), block_html, count=1)
    return LINE_RE.sub(lambda m: link_line(m, here, book), block_html)


def decorated_blocks(page_html: str, page: Page, book: Book) -> Iterator[str]:
    """The page's HTML in pieces, each chunk's block decorated and followed by its notes."""
    done = 0
    for chunk in book.on_page(page):
        extent = block_extent(page_html, chunk.anchor)
        if extent is None or extent[0] < done:
            log.warning(f"{page.file.src_uri}: the block #{chunk.anchor} is not on the page")
            continue
        start, end = extent
        yield page_html[done:start]
        yield decorate(page_html[start:end], chunk, page, book)
        yield notes(chunk, page, book)
        done = end
    yield page_html[done:]


def on_page_content(html_text: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if not book().on_page(page):
        return html_text
    return "".join(decorated_blocks(html_text, page, book()))


# ------------------------------------------------------------------------------- MathJax


def mathjax_dir() -> Path:
    """Same default and variable as scripts/fetch_mathjax.py."""
    return Path(os.environ.get("MINIGPT_MATHJAX_DIR") or ROOT / ".cache" / "mathjax")


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    entry = mathjax_dir() / MATHJAX_ENTRY
    if not entry.is_file():
        raise PluginError(
            f"MathJax is missing ({entry} not found): the book typesets math with a local copy. "
            f"Fetch it once with `{FETCH_COMMAND}` (needs npm), then build again."
        )
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the local MathJax to the site, under javascripts/mathjax/."""
    source = mathjax_dir()
    for path in sorted(source.rglob("*")):
        if path.is_file():
            uri = f"{MATHJAX_URI}/{path.relative_to(source).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
