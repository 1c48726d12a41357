"""Chapter 12's figures: two processes (ddp, fsdp) against one, by tests/test_distributed.py's
helpers. Run from the project root: python scripts/distributed_check.py FOLDER"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path[:0] = [".", "tests"]
from test_distributed import TEXT, TINY, max_difference, minigpt  # noqa: E402


def main(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "corpus.txt").write_text(TEXT, encoding="utf-8")
    data = ["--data", str(folder / "corpus.txt")]
    print(minigpt(["train", *data, "--out", str(folder / "two"), *TINY], processes=2).stdout)
    minigpt(["train", *data, "--out", str(folder / "fsdp"), *TINY, "parallel=fsdp"], processes=2)
    minigpt(["train", *data, "--out", str(folder / "one"), *TINY, "grad_accum=2"])
    for name in ("two", "fsdp"):
        print(f"{name} against one process: {max_difference(folder / name, folder / 'one'):.1e}")
    for name, processes in (("one", 1), ("two", 1), ("fsdp", 2)):
        shutil.copytree(folder / name, folder / f"{name}-more")
        more = ["max_iters=15"] + (["grad_accum=2"] if processes == 1 else [])
        minigpt(["train", "--resume", *more, "--out", str(folder / f"{name}-more")], processes)
    for name in ("two", "fsdp"):
        difference = max_difference(folder / f"{name}-more", folder / "one-more")
        print(f"{name}, resumed to step 15, against one process: {difference:.1e}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
