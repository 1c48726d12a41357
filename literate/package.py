"""The package on disk: what a tangle changes, the guard that keeps hand edits and files of
chapters left out of the nav, and writing all the files as one change.

Files under minigpt/ that carry the generated header belong to tangle.py; it rewrites those
that differ from the book and removes those the book no longer makes. Any other file there is
never touched.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .book import Book, load_book
from .expand import HEADER_START, Generated, tangle_book
from .markdown import COMMENT_PREFIX, PACKAGE, TangleError, TangleErrors
from .sourcemap import SOURCEMAP, read_text, recorded_hashes, sha256, sourcemap_text, tangled_hashes

HEADER_CHAPTERS_RE = re.compile(rf"{HEADER_START} from (?P<chapters>.+?)\. Do not edit")


class WriteError(Exception):
    """A file could not be written or removed; the message says which files were."""


def tangled(root: Path, texts: dict[str, str] | None = None) -> tuple[Book, dict[str, Generated]]:
    """The book and its files in memory; TangleErrors if it has mistakes."""
    book = load_book(root, texts)
    generated = tangle_book(book)
    errors = [e for g in generated.values() if (e := escape_error(root, book, g))]
    if errors:
        raise TangleErrors(errors)
    return book, generated


def escape_error(root: Path, book: Book, generated: Generated) -> TangleError | None:
    """A target that a symbolic link inside the package leads out of it."""
    package = (root / PACKAGE).resolve()
    target = (root / generated.path).resolve()
    if target.is_relative_to(package):
        return None
    block = book.files[generated.path].blocks[0]
    return TangleError(block.path, block.fence_line, f"file={generated.path}: the path leaves "
                       f"{PACKAGE}/ through a symbolic link (it resolves to {target})")


def generated_on_disk(root: Path) -> dict[str, str]:
    """Files under the package that carry tangle.py's header (others are never touched)."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*")):
        if path.suffix in COMMENT_PREFIX and path.is_file() and "__pycache__" not in path.parts:
            text = read_text(path)
            header = f"{COMMENT_PREFIX[path.suffix]} {HEADER_START}"
            if text is not None and text.startswith(header):
                found[path.relative_to(root).as_posix()] = text
    return found


def header_chapters(text: str) -> list[str]:
    """The chapters a generated file's header names (the header may wrap over lines)."""
    header = " ".join(line[1:].strip() for line in text.splitlines()[:6] if line.startswith("#"))
    match = HEADER_CHAPTERS_RE.search(header)
    return re.findall(r"[^\s,]+\.md", match["chapters"]) if match else []


@dataclass
class Plan:
    """What a tangle changes, and what stands in its way."""

    writes: dict[str, str] = field(default_factory=dict)
    removals: list[str] = field(default_factory=list)
    sourcemap: str | None = None  # the new source map, when it changes
    hand_edited: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # no record of the last tangle
    left_out: dict[str, list[str]] = field(default_factory=dict)  # file -> chapters not in nav

    def is_empty(self) -> bool:
        return not self.writes and not self.removals and self.sourcemap is None


def plan_tangle(root: Path, book: Book, generated: dict[str, Generated]) -> Plan:
    plan, recorded = Plan(), recorded_hashes(root)
    stale = generated_on_disk(root)
    for path, gen in generated.items():
        stale.pop(path, None)
        disk = read_text(root / path)
        if disk != gen.text:
            plan.writes[path] = gen.text
            if disk is not None:
                note_hand_edit(root, plan, path, disk, recorded)
    for path, disk in stale.items():
        plan.removals.append(path)
        if path in recorded:  # no record of a stale file: its header says it is ours
            note_hand_edit(root, plan, path, disk, recorded)
        # A chapter that is still there but not in the nav: a nav mistake, not a deletion.
        chapters = [c for c in header_chapters(disk)
                    if c not in book.pages and (root / c).is_file()]
        if chapters:
            plan.left_out[path] = chapters
    sourcemap = sourcemap_text(root, generated)
    if read_text(root / SOURCEMAP) != sourcemap:
        plan.sourcemap = sourcemap
    return plan


def note_hand_edit(root: Path, plan: Plan, path: str, disk: str, recorded: dict[str, str]) -> None:
    known = tangled_hashes(root, path, recorded)
    if not known:
        plan.unknown.append(path)
    elif sha256(disk) not in known:
        plan.hand_edited.append(path)


def refusal(plan: Plan) -> str | None:
    """Why writing over the package would lose work, and what to do; None if it would not."""
    parts = []
    if plan.hand_edited:
        parts.append(f"Edited by hand since the last tangle: {', '.join(plan.hand_edited)}.\n"
                     f"Carry the edits into their chapters with `python tangle.py stitch`, "
                     f"or overwrite them with the book: `python tangle.py --force`.")
    if plan.unknown:
        parts.append(f"Different from the book, with no record of the last tangle (no "
                     f"{SOURCEMAP}, not committed): {', '.join(plan.unknown)}.\n"
                     f"If you edited them, run `python tangle.py stitch`; to overwrite them "
                     f"with the book, run `python tangle.py --force`.")
    for path, chapters in plan.left_out.items():
        parts.append(f"{path} would be removed, but it comes from {', '.join(chapters)}, which "
                     f"is not in the nav of mkdocs.yml. Add the chapter to the nav (or correct "
                     f"its entry); to remove the file anyway, run `python tangle.py --force`.")
    return "\n".join(parts) or None


def write_package(root: Path, book: Book, generated: dict[str, Generated], force: bool,
                  forced: frozenset[str] = frozenset()) -> int:
    """Write what changed, remove stale generated files, refresh the source map."""
    plan = plan_tangle(root, book, generated)
    plan.hand_edited = [p for p in plan.hand_edited if p not in forced]
    plan.unknown = [p for p in plan.unknown if p not in forced]
    message = None if force else refusal(plan)
    if message:
        print(message + "\nNothing written.", file=sys.stderr)
        return 1
    sourcemap = {SOURCEMAP: plan.sourcemap} if plan.sourcemap is not None else {}
    write_all(root, {**plan.writes, **sourcemap}, plan.removals)
    for path in [*plan.writes, *(f"{p} (removed)" for p in plan.removals)]:
        print(f"  {path}")
    print(f"{len(plan.writes)} files written, {len(plan.removals)} removed "
          f"({len(generated)} files from the book)" + (f"; {SOURCEMAP} updated" * bool(sourcemap)))
    return 0


def write_all(root: Path, writes: dict[str, str], removals: Sequence[str] = ()) -> None:
    """Write the files as one change: first a complete temporary file beside each, then the
    renames, then the removals. A failure before the renames (a full disk, a folder that
    cannot be written) changes nothing; a later one raises WriteError naming what was done."""
    staged: dict[str, str] = {}
    done: list[str] = []
    action = current = ""
    try:
        action = "write"
        for current, text in writes.items():
            staged[current] = stage(root / current, text)
        for current, temporary in staged.items():
            os.replace(temporary, root / current)
            done.append(current)
        action = "remove"
        for current in removals:
            (root / current).unlink(missing_ok=True)
            done.append(f"{current} (removal)")
    except BaseException as e:
        for path, temporary in staged.items():
            if path not in done:
                Path(temporary).unlink(missing_ok=True)
        if not isinstance(e, OSError):
            raise
        planned = [*writes, *(f"{path} (removal)" for path in removals)]
        left = [path for path in planned if path not in done]
        raise WriteError(f"cannot {action} {current}: {e.strerror or e}\n"
                         + (f"Written: {', '.join(done)}.\n" if done else "Nothing was written.\n")
                         + f"Not written (as before): {', '.join(left)}.\n"
                         + "Fix the cause, then run the command again.") from e


def stage(path: Path, text: str) -> str:
    """A complete temporary copy of the new file, beside it, with the old file's permissions."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as tmp:
            tmp.write(text)
        os.chmod(temporary, mode)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return temporary


def unified_diff(path: str, old: str | None, new: str | None) -> str:
    lines = difflib.unified_diff((old or "").splitlines(keepends=True),
                                 (new or "").splitlines(keepends=True),
                                 f"{path} (on disk)" if old is not None else "/dev/null",
                                 f"{path} (from the book)" if new is not None else "/dev/null")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def sourcemap_note(root: Path, new: str) -> str:
    """Why the source map differs: missing, or which chapters moved since the last tangle."""
    old = read_text(root / SOURCEMAP)
    if old is None:
        return f"{SOURCEMAP} is missing."
    try:
        before = json.loads(old)["chapters"]
    except (ValueError, KeyError, TypeError):
        return f"{SOURCEMAP} cannot be read."
    after = json.loads(new)["chapters"]
    moved = sorted(c for c in {*before, *after} if before.get(c) != after.get(c))
    return (f"{SOURCEMAP} is out of date: {', '.join(moved) or 'the files'} changed since the "
            f"last tangle. It records the chapter line of every generated line, so even an "
            f"edit of prose needs a tangle.")


def run_tangle(root: Path, force: bool) -> int:
    book, generated = tangled(root)
    return write_package(root, book, generated, force)


def run_check(root: Path) -> int:
    """Write nothing; a diff of every file that differs, and the command to run."""
    book, generated = tangled(root)
    plan = plan_tangle(root, book, generated)
    if plan.is_empty():
        print(f"{PACKAGE}/ matches the book ({len(generated)} files)")
        return 0
    for path, text in plan.writes.items():
        sys.stdout.write(unified_diff(path, read_text(root / path), text))
    for path in plan.removals:
        sys.stdout.write(unified_diff(path, read_text(root / path), None))
    if plan.sourcemap is not None:
        print(sourcemap_note(root, plan.sourcemap), file=sys.stderr)
    changed = len(plan.writes) + len(plan.removals) + (plan.sourcemap is not None)
    print(f"\n{changed} files of {PACKAGE}/ differ from the book.", file=sys.stderr)
    message = refusal(plan)
    if message:
        print(message, file=sys.stderr)
    blocked = {*plan.hand_edited, *plan.unknown, *plan.left_out}
    if {*plan.writes, *plan.removals} - blocked or (plan.sourcemap and not message):
        print("To write the package from the book, run: python tangle.py", file=sys.stderr)
    return 1
