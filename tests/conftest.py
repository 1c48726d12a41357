"""Shared test set-up: a failing test's report says where in the book the failing code is.

Frames in the generated package (minigpt/) are listed with their chapter line, from
minigpt/_literate.py (written in book/appendix-literate.md), under "Where in the book".
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tangle.py sits at the root, not in an installed package


def book_locations(tb: TracebackType | None) -> list[str]:
    """Chapter lines of the traceback's frames in minigpt/; none if the helper is missing."""
    try:
        from minigpt._literate import book_locations as locate
    except ImportError:  # not tangled yet: the plain report is all there is
        return []
    return locate(tb)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None:
        lines = book_locations(call.excinfo.tb)
        if lines:
            report.sections.append(("Where in the book", "\n".join(lines)))
