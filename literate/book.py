"""The book: every chapter's blocks gathered into chunks, with their references checked.

A chunk is a name and the blocks that define and continue it, in book order (the order of the
nav in mkdocs.yml). A reference is a `<<name>>` line. Before anything is expanded, the book is
checked as a whole: every reference names a chunk, no chunk includes itself, and every chunk
ends up in some file. All the mistakes are collected, so that one run reports them all.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .markdown import REFERENCE_RE, Block, TangleError, parse_page
from .nav import book_pages


@dataclass
class Chunk:
    """A named chunk or a file root, with its continuations in book order."""

    name: str | None
    file: str | None
    blocks: list[Block]

    @property
    def label(self) -> str:
        return self.name or f"file={self.file}"


@dataclass
class Reference:
    """A `<<name>>` line: the block that holds it, its index in the body, its indentation."""

    block: Block
    index: int
    name: str
    indent: str

    @property
    def line(self) -> int:
        return self.block.body_line + self.index


@dataclass
class Book:
    """The chunks and files of the chapters, and the mistakes found in them."""

    pages: list[str] = field(default_factory=list)  # the chapters read, in book order
    blocks: list[Block] = field(default_factory=list)
    chunks: dict[str, Chunk] = field(default_factory=dict)  # by name, named file roots too
    files: dict[str, Chunk] = field(default_factory=dict)  # by path
    references: list[Reference] = field(default_factory=list)
    errors: list[TangleError] = field(default_factory=list)
    owners: dict[int, Chunk] = field(default_factory=dict)  # id(block) -> its chunk

    def chunk_of(self, block: Block) -> Chunk:
        return self.owners[id(block)]

    def error(self, block: Block, line: int, message: str) -> None:
        self.errors.append(TangleError(block.path, line, message))


def load_book(root: Path, texts: dict[str, str] | None = None) -> Book:
    """The chapters of the nav, parsed and checked; texts replaces chapters (by path)."""
    pages = []
    for page in book_pages(root):
        path = page.relative_to(root).as_posix()
        text = texts[path] if texts and path in texts else page.read_text(encoding="utf-8")
        pages.append((path, text))
    return read_book(pages)


def read_book(pages: Iterable[tuple[str, str]]) -> Book:
    """The book made of these (chapter path, text) pairs, in order; mistakes in book.errors."""
    book = Book()
    for path, text in pages:
        book.pages.append(path)
        book.blocks += parse_page(path, text, book.errors)
    for block in book.blocks:
        register(book, block)
    collect_references(book)
    book.errors += cycle_errors(book)
    book.errors += unused_errors(book)
    return book


def register(book: Book, block: Block) -> None:
    """Add a block to the chunk it defines or continues, or report why it cannot be."""
    first = book.chunks.get(block.name) if block.name else None
    if block.file is not None and block.file in book.files:
        earlier = book.files[block.file].blocks[0].location
        book.error(block, block.fence_line, f"file root {block.file} defined twice (first at "
                   f"{earlier}); continue it with {{#name .append}} on a named root")
    elif block.append and first is None:
        book.error(block, block.fence_line, f".append to chunk '{block.name}', which is not "
                   f"defined before this block{later_hint(book, block)}")
    elif block.append and first is not None:
        first.blocks.append(block)
        book.owners[id(block)] = first
    elif first is not None:
        book.error(block, block.fence_line, f"chunk '{block.name}' is already defined at "
                   f"{first.blocks[0].location}: write {{#{block.name} .append}} to continue it")
    else:
        chunk = Chunk(block.name, block.file, [block])
        book.owners[id(block)] = chunk
        if block.name:
            book.chunks[block.name] = chunk
        if block.file:
            book.files[block.file] = chunk


def later_hint(book: Book, block: Block) -> str:
    later = [b for b in book.blocks if b.name == block.name and not b.append and b is not block]
    if later:
        return f" (it is defined later, at {later[0].location}: chunks are read in book order)"
    return closest_hint(block.name or "", book.chunks)


def closest_hint(name: str, names: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(close)}?" if close else ""


def collect_references(book: Book) -> None:
    """Find every <<name>> line of the registered blocks and check that it names a chunk."""
    for block in book.blocks:
        if id(block) not in book.owners:
            continue  # a block that was refused: its mistake is already reported
        for index, line in enumerate(block.body):
            if match := REFERENCE_RE.match(line):
                reference = Reference(block, index, match["name"], match["indent"])
                book.references.append(reference)
                check_reference(book, reference)


def check_reference(book: Book, reference: Reference) -> None:
    target = book.chunks.get(reference.name)
    if target is None:
        book.error(reference.block, reference.line, f"undefined chunk <<{reference.name}>>"
                   f"{closest_hint(reference.name, book.chunks)}")
    elif target.file is not None:
        book.error(reference.block, reference.line, f"<<{reference.name}>> is the file root "
                   f"of {target.file}: a file cannot be included in another")


def graph(book: Book) -> dict[str, list[Reference]]:
    """Chunk label -> the references in its blocks that name an includable chunk."""
    edges: dict[str, list[Reference]] = {}
    for reference in book.references:
        if reference.name in book.chunks and not book.chunks[reference.name].file:
            edges.setdefault(book.chunk_of(reference.block).label, []).append(reference)
    return edges


def cycle_errors(book: Book) -> list[TangleError]:
    """One error per reference cycle, at the reference that closes it: 'a -> b -> a'."""
    edges, errors, done = graph(book), [], set()
    for start in edges:
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        while stack:
            label, chain = stack.pop()
            for reference in edges.get(label, []):
                if reference.name == start and frozenset(chain) not in done:
                    done.add(frozenset(chain))
                    errors.append(TangleError(reference.block.path, reference.line,
                                              f"reference cycle: {' -> '.join([*chain, start])}"))
                elif reference.name not in chain:
                    stack.append((reference.name, [*chain, reference.name]))
    return errors


def unused_errors(book: Book) -> list[TangleError]:
    """A chunk that no file includes, directly or through other chunks, is a mistake."""
    edges, reached = graph(book), set()
    pending = [chunk.label for chunk in book.files.values()]
    while pending:
        label = pending.pop()
        if label not in reached:
            reached.add(label)
            pending += [reference.name for reference in edges.get(label, [])]
    errors = []
    for name, chunk in book.chunks.items():
        if name not in reached and chunk.file is None:
            users = sorted({r.block.location for r in book.references if r.name == name})
            why = f" (only by chunks no file includes, at {', '.join(users)})" if users else ""
            block = chunk.blocks[0]
            errors.append(TangleError(block.path, block.fence_line,
                                      f"chunk '{name}' is defined but never used{why}"))
    return errors
