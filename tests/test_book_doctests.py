"""Run the `>>>` examples of every chapter as doctests.

Only ```pycon fences count: the rest of each chapter is blanked out line for line, so a
failure is reported at the chapter's own line number. Each chapter runs top to bottom in one
namespace, as a reader would type it, from a scratch working directory.
"""

from __future__ import annotations

import doctest
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tangle  # noqa: E402  (the repo root holds tangle.py, not an installed module)

FENCE_RE = re.compile(r"^(?P<indent>\s*)(?P<ticks>`{3,})(?P<info>.*)$")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def pycon_only(text: str) -> str:
    """Keep the lines inside ```pycon fences; blank every other line."""
    kept: list[str] = []
    closing: str | None = None  # the fence that ends the block we are in
    keep_block = False
    for line in text.splitlines():
        match = FENCE_RE.match(line)
        if closing is None and match:
            closing = match["ticks"]
            keep_block = match["info"].strip().split(" ")[0] in ("pycon", "{.pycon}")
            kept.append("")
        elif closing is not None and line.strip() == closing:
            closing = None
            kept.append("")
        else:
            kept.append(line if closing is not None and keep_block else "")
    return "\n".join(kept) + "\n"


def chapters_with_examples() -> list[Path]:
    pages = tangle.nav_pages(ROOT)
    return [p for p in pages if p.exists() and ">>>" in pycon_only(p.read_text())]


@pytest.mark.parametrize(
    "chapter", chapters_with_examples(), ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_chapter_examples(chapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    name = chapter.relative_to(ROOT).as_posix()
    test = doctest.DocTestParser().get_doctest(
        pycon_only(chapter.read_text()), {"__name__": "__book__"}, name, name, 0
    )
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def test_pycon_extraction_keeps_line_numbers() -> None:
    page = "text\n```pycon\n>>> 1 + 1\n2\n```\n```python\n>>> 3\n```\n"
    lines = pycon_only(page).splitlines()
    assert lines[2] == ">>> 1 + 1" and lines[3] == "2"
    assert ">>> 3" not in lines  # a plain python block is not a doctest
