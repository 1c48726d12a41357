"""Every code block of the book has prose before it: no two blocks in a row without a sentence."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tangle  # noqa: E402  (the repo root holds tangle.py, not an installed module)

FENCE_RE = re.compile(r"^(?P<ticks>`{3,}|~{3,})(?P<info>.*)$")


def blocks_without_prose(text: str) -> list[int]:
    """Lines of top-level fences that follow the previous block with only blank lines between."""
    lines = text.splitlines()
    found: list[int] = []
    closing: str | None = None
    prose_since_block = True
    for number, line in enumerate(lines, start=1):
        fence = FENCE_RE.match(line)
        if closing is None:
            if fence:
                if not prose_since_block:
                    found.append(number)
                closing = fence["ticks"]
            elif line.strip() and not line.startswith("<!--"):
                prose_since_block = True
        elif line.strip() == closing:
            closing = None
            prose_since_block = False
    return found


@pytest.mark.parametrize("chapter", tangle.nav_pages(ROOT), ids=lambda p: p.name)
def test_every_block_has_prose_before_it(chapter: Path) -> None:
    if chapter.suffix != ".md":
        pytest.skip("a notebook")
    assert blocks_without_prose(chapter.read_text(encoding="utf-8")) == []


def test_the_check_finds_two_blocks_in_a_row() -> None:
    fence = "`" * 3
    text = f"Prose.\n\n{fence}python\na = 1\n{fence}\n\n{fence}python\nb = 2\n{fence}\n"
    assert blocks_without_prose(text) == [7]
    with_prose = text.replace(f"\n\n{fence}python\nb", f"\nMore.\n\n{fence}python\nb")
    assert blocks_without_prose(with_prose) == []


def examples_outside_pycon(text: str) -> list[int]:
    """Lines of `>>>` examples in fences other than ```pycon, which the doctests never run."""
    found: list[int] = []
    closing: str | None = None
    info = ""
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE_RE.match(line.strip())
        if closing is None and fence:
            closing, info = fence["ticks"], fence["info"].strip()
        elif closing is not None and line.strip() == closing:
            closing = None
        elif closing is not None and line.lstrip().startswith(">>> ") and info != "pycon":
            found.append(number)
    return found


@pytest.mark.parametrize("chapter", tangle.nav_pages(ROOT), ids=lambda p: p.name)
def test_every_example_is_a_doctest(chapter: Path) -> None:
    if chapter.suffix != ".md":
        pytest.skip("a notebook")
    assert examples_outside_pycon(chapter.read_text(encoding="utf-8")) == []


def test_an_example_in_a_python_fence_is_found() -> None:
    assert examples_outside_pycon("```python\n>>> 1 + 1\n2\n```\n```pycon\n>>> 2\n2\n```\n") == [2]
