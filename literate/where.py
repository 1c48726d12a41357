"""where and list: from a line of the package to its chapter line, and the map of all chunks."""

from __future__ import annotations

import re
import sys
from pathlib import Path, PurePosixPath

from .book import Book, Reference, load_book
from .expand import Generated, book_line
from .markdown import PACKAGE, Block
from .package import tangled
from .sourcemap import read_text

LOCATION_RE = re.compile(r"^(?P<path>.+):(?P<line>\d+)$")


def run_where(root: Path, location: str) -> int:
    match = LOCATION_RE.match(location)
    if not match:
        print(f"where: give FILE:LINE, e.g. {PACKAGE}/model.py:57", file=sys.stderr)
        return 2
    path, lineno = package_path(root, match["path"]), int(match["line"])
    _, generated = tangled(root)
    if path not in generated:
        print(f"where: {path} is not generated from the book", file=sys.stderr)
        return 1
    gen = generated[path]
    if read_text(root / path) != gen.text:
        print(f"note: {path} differs from the book; these are the lines of the book's "
              f"version (python tangle.py --check shows the difference)", file=sys.stderr)
    if not 1 <= lineno <= len(gen.lines):
        print(f"where: {path} has {len(gen.lines)} lines", file=sys.stderr)
        return 1
    print(describe_line(gen, lineno))
    return 0


def package_path(root: Path, given: str) -> str:
    """A path as typed (absolute, or relative to the current folder) relative to root."""
    candidate = Path(given)
    for path in (candidate, Path.cwd() / candidate):
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
    return PurePosixPath(given).as_posix()


def describe_line(gen: Generated, lineno: int) -> str:
    origin = gen.origins[lineno - 1]
    chapter, line, chunk = book_line(gen, lineno)
    where = f"{chapter}:{line}: {gen.path}:{lineno}"
    if origin.block is None:
        return f"{where} is the generated header ({chunk})"
    if origin.index < 0 and not gen.lines[lineno - 1]:
        return f"{where} is a blank line that tangle.py adds above the marker of chunk {chunk}"
    if origin.index < 0:
        return f"{where} is the marker of chunk {chunk}"
    return f"{chapter}:{line}: chunk {chunk}"


def run_list(root: Path) -> int:
    book = load_book(root)
    users: dict[str, list[Reference]] = {}
    for reference in book.references:
        users.setdefault(reference.name, []).append(reference)
    chunks = {id(c): c for c in [*book.files.values(), *book.chunks.values()]}.values()
    for chunk in sorted(chunks, key=lambda c: block_order(book, c.blocks[0])):
        kind = f"file {chunk.file}" + (f" (#{chunk.name})" if chunk.name else "")
        print(kind if chunk.file else f"chunk {chunk.name}")
        print(f"  defined    {chunk.blocks[0].location}")
        for block in chunk.blocks[1:]:
            print(f"  continued  {block.location}")
        for ref in users.get(chunk.name or "", []):
            print(f"  used       {ref.block.path}:{ref.line} "
                  f"(in {book.chunk_of(ref.block).label})")
        if not chunk.file and chunk.name not in users:
            print("  used       never")
    for error in book.errors:
        print(f"warning: {error}", file=sys.stderr)
    return 0


def block_order(book: Book, block: Block) -> int:
    return next(i for i, b in enumerate(book.blocks) if b is block)
