"""The book's figures: each is drawn by minigpt/figures.py, committed, and shown in a chapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from minigpt.figures import FIGURES

ROOT = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_each_figure_is_drawn_committed_and_shown(name: str, tmp_path: Path) -> None:
    FIGURES[name](tmp_path / name)
    assert (tmp_path / name).read_bytes().startswith(PNG_SIGNATURE)
    assert (ROOT / "book" / "images" / name).read_bytes().startswith(PNG_SIGNATURE), \
        f"run `make figures` and commit book/images/{name}"
    chapters = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "book").glob("*.md"))
    assert f"(images/{name})" in chapters, f"no chapter shows {name}"
