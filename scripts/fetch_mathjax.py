"""Fetch MathJax 3 from the npm registry into .cache/mathjax/, for the book's offline math.

The built book typesets its formulas with a copy of MathJax served from the site itself, so a
reader needs no network. The copy is not committed: this script downloads the pinned npm
package once (``npm pack``, checked against its sha512), and keeps only the files the page needs.
hooks/mathjax.py then adds them to the site at build time, and refuses to build without them.

    python scripts/fetch_mathjax.py                  # download with npm (once; then a no-op)
    python scripts/fetch_mathjax.py --tarball FILE   # use an already downloaded mathjax-3.2.2.tgz

The destination can be changed with MINIGPT_MATHJAX_DIR (the hook reads the same variable).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION = "3.2.2"
INTEGRITY = (
    "sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/"
    "FEsPsjKPZGJvtRZM1vO+geW0OhGw=="
)
# What a page needs: the TeX-input/HTML-output component, the TeX extensions it autoloads,
# its web fonts, and the context menu with the accessibility tools it can switch on.
KEEP = (
    "tex-mml-chtml.js",
    "input/tex/extensions/",
    "output/chtml/fonts/woff-v2/",
    "ui/",
    "a11y/",
    "sre/",
)
STAMP = "VERSION"


def mathjax_dir() -> Path:
    """Where the kept files go: $MINIGPT_MATHJAX_DIR, or .cache/mathjax in the repository."""
    return Path(os.environ.get("MINIGPT_MATHJAX_DIR") or ROOT / ".cache" / "mathjax")


def npm_pack(workdir: Path) -> Path:
    """Download the pinned package tarball with npm; return its path."""
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("fetch_mathjax: npm not found; install Node.js, or pass --tarball FILE")
    result = subprocess.run(
        [npm, "pack", f"mathjax@{VERSION}", "--json", "--pack-destination", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
    )
    return workdir / json.loads(result.stdout)[0]["filename"]


def check_integrity(tarball: Path) -> None:
    """Fail unless the tarball is byte for byte the package published as mathjax@VERSION."""
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if f"sha512-{digest}" != INTEGRITY:
        sys.exit(f"fetch_mathjax: {tarball} is not mathjax@{VERSION} (sha512 mismatch)")


def extract(tarball: Path, dest: Path) -> int:
    """Unpack the kept files of package/es5/ into dest; return how many."""
    count = 0
    with tarfile.open(tarball) as tar:
        for member in tar.getmembers():
            rel = member.name.removeprefix("package/es5/")
            if not member.isfile() or rel == member.name or not rel.startswith(KEEP):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            source = tar.extractfile(member)
            assert source is not None
            target.write_bytes(source.read())
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tarball", type=Path, help="a downloaded mathjax-3.2.2.tgz")
    parser.add_argument("--force", action="store_true", help="fetch even if already present")
    args = parser.parse_args(argv)
    dest = mathjax_dir()
    stamp = dest / STAMP
    if not args.force and stamp.is_file() and stamp.read_text().strip() == VERSION:
        print(f"MathJax {VERSION} already in {dest}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.tarball or npm_pack(Path(tmp))
        check_integrity(tarball)
        staging = Path(tmp) / "mathjax"
        count = extract(tarball, staging)
        (staging / STAMP).write_text(VERSION + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), dest)
    print(f"MathJax {VERSION}: {count} files in {dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
