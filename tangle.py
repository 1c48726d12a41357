#!/usr/bin/env python3
"""Tangle the MiniGPT book into the `minigpt` package, and carry hand edits back.

The chapters in book/ are the source. Code blocks tagged ```python {#name}``` are chunks,
```python {file=minigpt/x.py}``` blocks are whole files, and a line `<<name>>` expands a chunk.
The contributor's guide is book/appendix-literate.md; the code is in literate/.

    python tangle.py              write minigpt/ from the book
    python tangle.py --check      write nothing; exit 1 with a diff if minigpt/ differs
    python tangle.py stitch       carry edits made in minigpt/ back into their chapters
    python tangle.py where minigpt/model.py:57
    python tangle.py list         every chunk: where it is defined, continued and used

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

# The names other code uses (the site's hook, the tests, the appendix's examples).
from literate.book import Book, Chunk, Reference, load_book, read_book
from literate.expand import Generated, Origin, tangle_book
from literate.markdown import REFERENCE_RE, Block, TangleError, TangleErrors, parse_markdown
from literate.nav import nav_pages, pages_outside_nav
from literate.package import WriteError, run_check, run_tangle
from literate.sourcemap import SOURCEMAP, build_sourcemap, sha256
from literate.stitch import run_stitch
from literate.where import run_list, run_where

__all__ = [
    "REFERENCE_RE", "SOURCEMAP", "Block", "Book", "Chunk", "Generated", "Origin", "Reference",
    "TangleError", "TangleErrors", "build_sourcemap", "load_book", "main", "nav_pages",
    "parse_markdown", "read_book", "sha256", "tangle_book",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tangle.py", description="Write the minigpt package from the book's code blocks.",
        epilog="Guide: book/appendix-literate.md. Exit status: 0 fine, 1 differences, refused "
               "or a file that could not be written, 2 mistakes in the book.")
    parser.add_argument("verb", nargs="?", choices=["stitch", "where", "list"],
                        help="stitch: carry hand edits back; where FILE:LINE; list: the chunks")
    parser.add_argument("location", nargs="?", help="for where: FILE:LINE")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 with a diff when the package differs")
    parser.add_argument("--force", action="store_true",
                        help="tangle: overwrite hand edits, remove the files of chapters "
                             "left out of the nav; stitch: let the file win")
    parser.add_argument("--timing", action="store_true", help="print how long it took")
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent),
                        help="the project folder (default: where tangle.py is)")
    args = parser.parse_args(argv)
    if args.verb == "where" and not args.location:
        parser.error("where needs FILE:LINE")
    if args.location and args.verb != "where":
        parser.error(f"unexpected argument {args.location}")
    if args.check and args.verb:
        parser.error("--check goes alone")
    return args


def run(args: argparse.Namespace) -> int:
    root = Path(args.root).resolve()
    for page in pages_outside_nav(root):
        print(f"note: {page} is not in the nav of mkdocs.yml, so its code is not tangled",
              file=sys.stderr)
    if args.verb == "stitch":
        return run_stitch(root, args.force)
    if args.verb == "where":
        return run_where(root, args.location)
    if args.verb == "list":
        return run_list(root)
    return run_check(root) if args.check else run_tangle(root, args.force)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        status = run(args)
        sys.stdout.flush()  # so that a closed pipe is found here, not at exit
    except (TangleError, TangleErrors) as e:
        count = len(e.errors) if isinstance(e, TangleErrors) else 1
        print(f"{e}\n{count} error{'s' * (count > 1)} in the book; nothing written.",
              file=sys.stderr)
        status = 2
    except WriteError as e:
        print(e, file=sys.stderr)
        status = 1
    except BrokenPipeError:  # `tangle.py list | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    if args.timing:
        print(f"tangle.py took {(time.perf_counter() - start) * 1000:.0f} ms", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
