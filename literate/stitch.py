"""stitch: carry edits made in the generated files back into the chapter blocks they came from.

Each generated line knows its origin (a line of a block, a marker, the header), so a diff
between the tangled file and the file on disk becomes edits of blocks. The edited chapters are
tangled in memory first; only a book that still tangles is written, chapters and package.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from pathlib import Path

from .expand import Generated, book_line
from .markdown import Block, TangleError, TangleErrors
from .package import tangled, write_all, write_package
from .sourcemap import read_text, recorded_hashes, sha256, tangled_hashes


@dataclass(frozen=True, eq=False)
class Edit:
    """Replace block.body[start:stop] by lines."""

    block: Block
    start: int
    stop: int
    lines: tuple[str, ...]


def run_stitch(root: Path, force: bool) -> int:
    _, generated = tangled(root)
    recorded, edits, stitched, problems = recorded_hashes(root), [], [], []
    for path, gen in generated.items():
        disk = read_text(root / path)
        if disk is None or disk == gen.text:
            continue
        known = tangled_hashes(root, path, recorded)
        if sha256(disk) in known:
            print(f"{path}: not edited by hand; the book is newer (run python tangle.py)")
            continue
        if known and sha256(gen.text) not in known and not force:
            problems.append(f"{path}: both the file and its chapters changed since the last "
                            f"tangle, so stitch cannot tell which to keep. Merge the change "
                            f"by hand, then run `python tangle.py stitch --force` (the file "
                            f"wins) or `python tangle.py --force` (the book wins).")
            continue
        edits += file_edits(gen, disk)
        stitched.append(path)
    if problems:
        print("\n".join(problems) + "\nNothing written.", file=sys.stderr)
        return 1
    if not edits:
        print("nothing to stitch: the package matches the book")
        return 0
    return apply_stitch(root, edits, frozenset(stitched))


def apply_stitch(root: Path, edits: list[Edit], stitched: frozenset[str]) -> int:
    """Rewrite the chapters, check the new book tangles, then write both."""
    texts = edited_chapters(root, edits)
    book, generated = tangled(root, texts)  # a broken result raises before anything is written
    write_all(root, texts)
    for edit in sorted(unique(edits), key=lambda e: (e.block.path, e.block.body_line, e.start)):
        print(f"stitched {edit.block.path}:{edit.block.body_line + edit.start} "
              f"(chunk {edit.block.name or edit.block.file})")
    return write_package(root, book, generated, force=False, forced=stitched)


def file_edits(generated: Generated, disk: str) -> list[Edit]:
    """The differences between the tangled file and the one on disk, as block edits."""
    new = disk.splitlines()
    matcher = difflib.SequenceMatcher(None, generated.lines, new, autojunk=False)
    edits, errors = [], []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        for hunk in split_hunk(generated, i1, i2, j1, j2):
            try:
                edits.append(edit_for(generated, *hunk, new))
            except ValueError as e:
                path, line, _ = book_line(generated, hunk[0] + 1)
                errors.append(TangleError(path, line, f"{generated.path}:{hunk[2] + 1}: {e}"))
    if errors:
        raise TangleErrors(errors)
    return edits


def split_hunk(gen: Generated, i1: int, i2: int, j1: int, j2: int) -> list[tuple[int, ...]]:
    """A line-for-line replacement across chunks is split into one hunk per line."""
    owners = {(id(o.block), o.indent) for o in gen.origins[i1:i2]}
    if len(owners) > 1 and i2 - i1 == j2 - j1:
        return [(i1 + k, i1 + k + 1, j1 + k, j1 + k + 1) for k in range(i2 - i1)]
    return [(i1, i2, j1, j2)]


def edit_for(gen: Generated, i1: int, i2: int, j1: int, j2: int, new: list[str]) -> Edit:
    """The block edit for generated lines [i1, i2) becoming new[j1:j2]; ValueError if none."""
    for block, start, stop, indent in edit_candidates(gen, i1, i2):
        lines = dedent(new[j1:j2], indent)
        if lines is not None:
            return Edit(block, start, stop, tuple(lines))
    raise ValueError("this edit is indented less than the chunk it belongs to, or touches "
                     "the generated header or a marker: make it in the chapter")


def edit_candidates(gen: Generated, i1: int, i2: int) -> list[tuple[Block, int, int, str]]:
    """Blocks that may own the edit: the replaced lines' block, or a neighbour of an insert."""
    if i1 < i2:
        origins = gen.origins[i1:i2]
        first = origins[0]
        same = all(o.block is first.block and o.indent == first.indent and o.index >= 0
                   for o in origins)
        indices = [o.index for o in origins]
        contiguous = indices == list(range(first.index, first.index + len(origins)))
        if first.block is None or not same or not contiguous:
            raise ValueError("this edit spans several chunks or a generated line: make it in "
                             "the chapters, or edit one chunk at a time")
        return [(first.block, first.index, first.index + len(origins), first.indent)]
    candidates = []
    before = gen.origins[i1 - 1] if i1 > 0 else None
    after = gen.origins[i1] if i1 < len(gen.origins) else None
    if before is not None and before.block is not None and before.index >= 0:
        candidates.append((before.block, before.index + 1, before.index + 1, before.indent))
    if after is not None and after.block is not None and after.index >= 0:
        candidates.append((after.block, after.index, after.index, after.indent))
    if after is not None and after.reference is not None and after.block is not None:
        ref = after.reference  # insert before the <<name>> line this marker expands
        outer = after.indent[: len(after.indent) - len(ref.indent)]
        candidates.append((ref.block, ref.index, ref.index, outer))
    return candidates


def dedent(lines: list[str], indent: str) -> list[str] | None:
    if any(line.strip() and not line.startswith(indent) for line in lines):
        return None
    return [line[len(indent) :] if line.strip() else "" for line in lines]


def edited_chapters(root: Path, edits: list[Edit]) -> dict[str, str]:
    """The chapters' new text, edits applied bottom-up so that line numbers stay valid."""
    by_block: dict[int, list[Edit]] = {}
    for edit in unique(edits):
        by_block.setdefault(id(edit.block), []).append(edit)
    texts: dict[str, list[str]] = {}
    for block_edits in sorted(by_block.values(), key=lambda es: -es[0].block.body_line):
        block = block_edits[0].block
        if block.path not in texts:
            texts[block.path] = (root / block.path).read_text(encoding="utf-8").split("\n")
        lines = texts[block.path]
        fence = lines[block.fence_line - 1]
        indent = fence[: len(fence) - len(fence.lstrip(" "))]
        body = [indent + line if line.strip() else line for line in new_body(block, block_edits)]
        lines[block.body_line - 1 : block.body_line - 1 + len(block.body)] = body
    return {path: "\n".join(lines) for path, lines in texts.items()}


def unique(edits: list[Edit]) -> list[Edit]:
    """The edits without repeats: a chunk used twice may bring the same edit twice."""
    seen: dict[tuple[int, int, int, tuple[str, ...]], Edit] = {}
    for edit in edits:
        seen.setdefault((id(edit.block), edit.start, edit.stop, edit.lines), edit)
    return list(seen.values())


def new_body(block: Block, edits: list[Edit]) -> list[str]:
    body = list(block.body)
    edits = sorted(edits, key=lambda e: (e.start, e.stop))
    for earlier, later in zip(edits, edits[1:], strict=False):
        if later.start < earlier.stop or (later.start == earlier.start == later.stop):
            raise TangleErrors([TangleError(block.path, block.body_line + later.start,
                                            f"conflicting edits of chunk {block.name}: it is "
                                            f"used twice and was edited differently")])
    for edit in reversed(edits):
        body[edit.start : edit.stop] = edit.lines
    return body
