"""The source map, minigpt/sourcemap.json: what the last tangle wrote, and where each line of
it is in the book.

It is committed and shipped with the package. At run time, minigpt/_literate.py reads it to
label tracebacks with chapter lines; tangle.py reads the hashes in it to recognise a file
that was edited by hand since it was written.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from .book import load_book
from .expand import Generated, tangle_book
from .markdown import PACKAGE

SOURCEMAP = f"{PACKAGE}/sourcemap.json"
NOTE = "written by tangle.py from the book; do not edit (python tangle.py rewrites it)"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def sourcemap_entry(generated: Generated) -> dict[str, Any]:
    """The file's hash as written, and runs of lines: [first, count, chapter, line, chunk]."""
    spans: list[list[Any]] = []
    for number, origin in enumerate(generated.origins, 1):
        if origin.block is None or origin.index < 0:
            continue  # the header and the markers are not in any chapter
        line = origin.block.body_line + origin.index
        if spans and extends(spans[-1], number, origin.block.path, line, origin.chunk):
            spans[-1][1] += 1
        else:
            spans.append([number, 1, origin.block.path, line, origin.chunk])
    return {"sha256": sha256(generated.text), "spans": spans}


def extends(span: list[Any], number: int, path: str, line: int, chunk: str) -> bool:
    first, count, span_path, span_line, span_chunk = span
    return (first + count, span_line + count, span_path, span_chunk) == (number, line, path, chunk)


def sourcemap_text(root: Path, generated: dict[str, Generated]) -> str:
    """The map as JSON, with the hash of each chapter it points into: a chapter whose prose
    changed has moved lines, though the files it generates are the same."""
    files = {path: sourcemap_entry(g) for path, g in sorted(generated.items())}
    chapters = sorted({o.block.path for g in generated.values() for o in g.origins if o.block})
    hashes = {chapter: sha256(read_text(root / chapter) or "") for chapter in chapters}
    return dump({"format": 1, "note": NOTE, "chapters": hashes, "files": files})


def dump(sourcemap: dict[str, Any]) -> str:
    """JSON with one span to a line, so that a diff of the map shows which lines moved."""

    def members(items: dict[str, str], indent: str) -> str:
        inner = ",\n".join(f"{indent} {json.dumps(key)}: {value}" for key, value in items.items())
        return f"{{\n{inner}\n{indent}}}"

    def spans(entry: dict[str, Any]) -> str:
        rows = ",\n".join(f"    {json.dumps(span)}" for span in entry["spans"])
        return f"[\n{rows}\n   ]"

    files = {path: members({"sha256": json.dumps(entry["sha256"]), "spans": spans(entry)}, "  ")
             for path, entry in sourcemap["files"].items()}
    chapters = {path: json.dumps(digest) for path, digest in sourcemap["chapters"].items()}
    top = {"format": json.dumps(sourcemap["format"]), "note": json.dumps(sourcemap["note"]),
           "chapters": members(chapters, " "), "files": members(files, " ")}
    return members(top, "") + "\n"


def build_sourcemap(root: Path) -> dict[str, Any]:
    """The source map of the current book, computed in memory."""
    return json.loads(sourcemap_text(root, tangle_book(load_book(root))))


def recorded_hashes(root: Path) -> dict[str, str]:
    """File -> hash as last written by tangle.py, from the source map on disk."""
    try:
        files = json.loads((root / SOURCEMAP).read_text(encoding="utf-8"))["files"]
        return {path: entry["sha256"] for path, entry in files.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def committed_hash(root: Path, path: str) -> str | None:
    """Hash of the committed version: committed files were tangled (CI checks it)."""
    try:
        result = subprocess.run(["git", "-C", str(root), "show", f"HEAD:./{path}"],
                                capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return sha256(result.stdout.decode("utf-8", errors="replace").replace("\r\n", "\n"))


def tangled_hashes(root: Path, path: str, recorded: dict[str, str]) -> set[str]:
    """Hashes of the file's known tangled states; empty when nothing is known."""
    known = {recorded[path]} if path in recorded else set()
    committed = committed_hash(root, path)
    return known | {committed} if committed else known
