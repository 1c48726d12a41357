"""MkDocs hook that shows the book as a literate program.

The chapters hold the package's source as named code blocks, which ``tangle.py`` extracts.
This hook reads the pages of the site's nav into the tangler's own model of the book
(``literate.book``: blocks, chunks, references), and from it, on the site:

* gives every named or file block a title bar: its chunk name, ``≡`` for a definition or
  ``+≡`` for a continuation, and the file it ends up in;
* gives every block its own HTML id: the chunk name for the definition, ``name-2``,
  ``name-3``, ... for continuations, ``file-minigpt-x-py`` for an unnamed file block;
* turns every ``<<reference>>`` line inside code into a link to the chunk's definition,
  on whichever page it is;
* writes under each block where it is continued and where it is used;
* fills the index of chunks (the ``<!-- chunk-index -->`` placeholder of ``chunks.md``).

MathJax is served by the other hook, ``hooks/mathjax.py``.
"""

from __future__ import annotations

import html
import logging
import posixpath
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.nav import Navigation
from mkdocs.structure.pages import Page
from mkdocs.utils import get_relative_url

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# literate/ sits at the repository root, beside tangle.py; it is not an installed package.
from literate.book import Book, Chunk, Reference, read_book  # noqa: E402
from literate.markdown import REFERENCE_RE, Block, TangleError, parse_markdown  # noqa: E402

log = logging.getLogger(f"mkdocs.hooks.{__name__}")

INDEX_PLACEHOLDER = "<!-- chunk-index -->"
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
class Site:
    """The book's chunks, and where each block is on the site: its page and its HTML id."""

    book: Book
    pages: dict[str, Page]  # chapter path (as in Block.path) -> its page
    anchors: dict[int, str] = field(default_factory=dict)  # id(block) -> HTML id
    _files: dict[str, list[str]] = field(default_factory=dict)

    def blocks_on(self, page: Page) -> list[Block]:
        """The page's blocks that belong to a chunk, in page order."""
        return [b for b in self.book.blocks
                if self.pages[b.path].file is page.file and id(b) in self.book.owners]

    def page_of(self, block: Block) -> Page:
        return self.pages[block.path]

    def part(self, block: Block) -> int:
        """1 for a chunk's definition, 2, 3, ... for its continuations."""
        blocks = self.book.chunk_of(block).blocks
        return next(n for n, b in enumerate(blocks, 1) if b is block)

    def uses(self, chunk: Chunk) -> list[Reference]:
        return [r for r in self.book.references if chunk.name and r.name == chunk.name]

    def files_of(self, chunk: Chunk) -> list[str]:
        """The files a chunk ends up in: its own, or those of the chunks that use it."""
        key = key_of(chunk)
        if key not in self._files:
            self._files[key] = []  # ends a cycle of references (tangle.py reports those)
            found = {chunk.file} if chunk.file else set()
            for use in self.uses(chunk):
                found.update(self.files_of(self.book.chunk_of(use.block)))
            self._files[key] = sorted(found)
        return self._files[key]


_site: Site | None = None


# ---------------------------------------------------------------------------- the chunk map


def key_of(chunk: Chunk) -> str:
    """The chunk's name; the file's path for an unnamed file root."""
    return chunk.name or str(chunk.file)


def label(chunk: Chunk) -> str:
    """How a chunk is named in text: ⟨name⟩, or the bare path of an unnamed file root."""
    return f"⟨{chunk.name}⟩" if chunk.name else str(chunk.file)


def chapter_path(page: Page) -> str:
    """The page's path as tangle.py names chapters: relative to the repository root."""
    path = page.file.abs_src_path or page.file.src_uri
    if Path(path).is_relative_to(ROOT):
        return Path(path).relative_to(ROOT).as_posix()
    return page.file.src_uri


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


def assign_anchors(site: Site) -> None:
    """Give each block a unique id: name, name-2, name-3, ...; file-PATH for file blocks."""
    chunks = {id(c): c for c in site.book.owners.values()}.values()
    base = {key_of(c): c.name or f"file-{slug(str(c.file))}" for c in chunks}
    taken = set(base.values())
    for chunk in chunks:
        site.anchors[id(chunk.blocks[0])] = base[key_of(chunk)]
        for part, block in enumerate(chunk.blocks[1:], 2):
            anchor = f"{base[key_of(chunk)]}-{part}"
            while anchor in taken:
                anchor = f"{anchor}-cont"
            site.anchors[id(block)] = anchor
            taken.add(anchor)


def on_nav(nav: Navigation, config: MkDocsConfig, files: Files) -> Navigation:
    """Build the map of all chunks before any page is rendered."""
    global _site
    pages = {chapter_path(p): p for p in nav.pages if p.file.src_uri.endswith(".md")}
    book = read_book((path, page.file.content_string) for path, page in pages.items())
    for error in book.errors:  # tangle.py refuses such a book; --strict makes this an error
        log.warning(f"literate hook: {error}")
    _site = Site(book, pages)
    assign_anchors(_site)
    return nav


def site() -> Site:
    if _site is None:
        raise PluginError("literate hook: the chunk map was not built (on_nav did not run)")
    return _site


# ------------------------------------------------------------------------------ the markdown


def title_of(block: Block, site: Site) -> str:
    """The plain-text title bar; on_page_content turns it into links."""
    chunk = site.book.chunk_of(block)
    operator = "≡" if site.part(block) == 1 else "+≡"
    files = [f for f in site.files_of(chunk) if f != key_of(chunk)]
    arrow = f" → {', '.join(files)}" if files else ""
    return f"{label(chunk)} {operator}{arrow}".replace('"', "'")


def fence_attrs(old: str, block: Block, site: Site) -> str:
    """The new {...} of a chunk's fence: its anchor, a title, line numbers, other attributes."""
    kept = [a for a in old.split() if not a.startswith(("#", "file=", "title=", "linenums="))]
    mine = [f"#{site.anchors[id(block)]}", ".chunk", f'title="{title_of(block, site)}"',
            'linenums="1"']
    return "{" + " ".join(mine + kept) + "}"


def rewrite_fences(markdown: str, page: Page, site: Site) -> str:
    """Put each chunk's anchor and title into its fence's braces."""
    mapped = site.blocks_on(page)
    try:
        blocks = parse_markdown(chapter_path(page), markdown)
    except TangleError as error:
        raise PluginError(f"literate hook: {error}") from error
    if [b.fence_line for b in blocks] != [b.fence_line for b in mapped]:
        log.warning(f"{page.file.src_uri}: {len(blocks)} chunks now, {len(mapped)} in the map")
        return markdown
    lines = markdown.split("\n")
    for block in mapped:
        index = block.fence_line - 1
        match = BRACES_RE.search(lines[index])
        if match is None:
            log.warning(f"{page.file.src_uri}:{block.fence_line}: no {{...}} on this fence")
            continue
        lines[index] = lines[index][: match.start()] + fence_attrs(match["attrs"], block, site)
    return "\n".join(lines)


def escape_md(text: str) -> str:
    return re.sub(r"([\\`*_\[\]<>|])", r"\\\1", text)


def page_title(page: Page) -> str:
    return page.title or page.file.src_uri


def chapter_link(block: Block, here: Page, site: Site) -> str:
    """A markdown link to the chapter of a block (mkdocs checks these)."""
    page = site.page_of(block).file.src_uri
    target = posixpath.relpath(page, posixpath.dirname(here.file.src_uri) or ".")
    return f"[{escape_md(page_title(site.page_of(block)))}]({target})"


def html_link(text: str, block: Block, here: Page, site: Site, code: bool = False) -> str:
    """A raw <a> for the index: mkdocs cannot check links to code blocks (see tests)."""
    text = html.escape(text).replace("_", "&#95;").replace("*", "&#42;")  # no emphasis
    if code:
        text = f"<code>{text}</code>"
    return f'<a href="{href(block, here, site)}">{text}</a>'


DEFINES_RE = re.compile(r"^(?:async def|def|class) (\w+)|^([A-Z_][A-Z0-9_]*)(?::[^=]*)? =")
IMPORT_RE = re.compile(r"^(?:from (\S+) import|import (\S+))")
DOCSTRING_RE = re.compile(r'^r?("""|\'\'\')(.*?)(?:\1)?$')


def summary(chunk: Chunk) -> str:
    """What a chunk does, in a few words: the first line of its first docstring, else the names
    it defines, else the modules it imports."""
    body = chunk.blocks[0].body
    for line in body:
        if match := DOCSTRING_RE.match(line.strip()):
            return escape_md(match[2].strip().rstrip(".") + ".")
    defined = [m[1] or m[2] for line in body if (m := DEFINES_RE.match(line))]
    if defined:
        return "Defines " + ", ".join(f"`{name}`" for name in dict.fromkeys(defined)) + "."
    imported = [m[1] or m[2] for line in body if (m := IMPORT_RE.match(line.strip()))]
    if imported:
        return "Imports " + ", ".join(f"`{name}`" for name in dict.fromkeys(imported)) + "."
    return ""


def index_row(chunk: Chunk, here: Page, site: Site) -> str:
    """One chunk of the index: name, what it does, chapters (definition, continuations), users,
    files."""
    first, *later = chunk.blocks
    defined = [chapter_link(first, here, site)]
    defined += [html_link(f"+≡ {page_title(site.page_of(b))}", b, here, site) for b in later]
    users = [html_link(label(site.book.chunk_of(use.block)), use.block, here, site)
             for use in site.uses(chunk)]
    cells = [
        html_link(label(chunk), first, here, site),
        summary(chunk) or f"A piece of {', '.join(users)}.",
        "<br>".join(defined),
        ", ".join(users),
        "<br>".join(f"`{f}`" for f in site.files_of(chunk)),
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


def chunk_index(here: Page, site: Site) -> str:
    """The markdown of the index: the files, then every chunk in alphabetical order."""
    book = site.book
    files = [
        f"| {html_link(path, root.blocks[0], here, site, code=True)} | "
        f"{html_link(label(root) if root.name else 'the file block', root.blocks[0], here, site)}"
        f" | {summary(root)} | "
        f"{chapter_link(root.blocks[0], here, site)} |"
        for path, root in sorted(book.files.items())
    ]
    named = sorted(book.chunks, key=str.lower)
    chunks = [index_row(book.chunks[name], here, site) for name in named]
    return "\n".join(
        ["## Files", ""]
        + index_table(["File", "Root chunk", "What it is", "Chapter"], files)
        + ["## Chunks", ""]
        + index_table(["Chunk", "What it does", "Defined in", "Used in", "File"], chunks)
    )


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if INDEX_PLACEHOLDER in markdown:
        markdown = markdown.replace(INDEX_PLACEHOLDER, chunk_index(page, site()))
    if site().blocks_on(page):
        markdown = rewrite_fences(markdown, page, site())
    return markdown


# ---------------------------------------------------------------------------------- the HTML


def href(block: Block, here: Page, site: Site, line: int | None = None) -> str:
    """A link from page `here` to a block, or to one of its lines."""
    anchor = site.anchors[id(block)]
    if line is not None:
        anchor = f"__codelineno-{anchor}-{line}"
    page = site.page_of(block)
    if page.file is here.file:
        return f"#{anchor}"
    return f"{get_relative_url(page.file.url, here.file.url)}#{anchor}"


def link(block: Block, here: Page, site: Site, text: str, line: int | None = None) -> str:
    where = ""
    if site.page_of(block).file is not here.file:
        where = f" ({html.escape(page_title(site.page_of(block)))})"
    return f'<a href="{href(block, here, site, line)}">{html.escape(text)}</a>{where}'


def enumerate_words(items: list[str]) -> str:
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def notes(block: Block, here: Page, site: Site) -> str:
    """The sentences under a block: where it is continued, defined, used, written."""
    chunk = site.book.chunk_of(block)
    first, uses, sentences = chunk.blocks[0], site.uses(chunk), []
    if block is not first:
        name = f'<a href="{href(first, here, site)}">{html.escape(label(chunk))}</a>'
        where = "above"
        if site.page_of(first).file is not here.file:
            where = f"in {html.escape(page_title(site.page_of(first)))}"
        sentences.append(f"This code continues {name}, defined {where}.")
    elif len(chunk.blocks) > 1:
        later = [link(b, here, site, f"{label(chunk)} part {n}")
                 for n, b in enumerate(chunk.blocks[1:], 2)]
        sentences.append(f"This code is continued in {enumerate_words(later)}.")
    if uses:
        users = [link(u.block, here, site, label(site.book.chunk_of(u.block)), u.index + 1)
                 for u in uses]
        sentences.append(f"This code is used in {enumerate_words(users)}.")
    elif chunk.file and block is first:
        sentences.append(f"This code is written to <code>{html.escape(chunk.file)}</code>.")
    elif not site.files_of(chunk):
        sentences.append("This code is not used.")
    return f'<p class="chunk-notes">{" ".join(sentences)}</p>'


def title_html(block: Block, here: Page, site: Site) -> str:
    chunk = site.book.chunk_of(block)
    name = (f'<a class="chunk-name" href="{href(chunk.blocks[0], here, site)}">'
            f"{html.escape(label(chunk))}</a>")
    operator = "≡" if block is chunk.blocks[0] else "+≡"
    files = [f for f in site.files_of(chunk) if f != key_of(chunk)]
    where = ""
    if files:
        paths = ", ".join(f"<code>{html.escape(f)}</code>" for f in files)
        where = f' <span class="chunk-file">→ {paths}</span>'
    return f'<span class="filename">{name} <span class="chunk-op">{operator}</span>{where}</span>'


def link_line(match: re.Match[str], here: Page, site: Site) -> str:
    """One code line: if it is a <<reference>>, make the reference a link."""
    text = html.unescape(TAG_RE.sub("", match["code"]))
    ref = REFERENCE_RE.match(text)
    if ref is None:
        return match.group()
    name = ref["name"]
    if name not in site.book.chunks:
        log.warning(f"{here.file.src_uri}: <<{name}>> is used but never defined")
        return match.group()
    target = href(site.book.chunks[name].blocks[0], here, site)
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


def decorate(block_html: str, block: Block, here: Page, site: Site) -> str:
    block_html = TITLE_RE.sub(lambda _: title_html(block, here, site), block_html, count=1)
    return LINE_RE.sub(lambda m: link_line(m, here, site), block_html)


def decorated_blocks(page_html: str, page: Page, site: Site) -> Iterator[str]:
    """The page's HTML in pieces, each chunk's block decorated and followed by its notes."""
    done = 0
    for block in site.blocks_on(page):
        anchor = site.anchors[id(block)]
        extent = block_extent(page_html, anchor)
        if extent is None or extent[0] < done:
            log.warning(f"{page.file.src_uri}: the block #{anchor} is not on the page")
            continue
        start, end = extent
        yield page_html[done:start]
        yield decorate(page_html[start:end], block, page, site)
        yield notes(block, page, site)
        done = end
    yield page_html[done:]


def on_page_content(html_text: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if not site().blocks_on(page):
        return html_text
    return "".join(decorated_blocks(html_text, page, site()))
