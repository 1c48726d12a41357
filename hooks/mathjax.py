"""MkDocs hook that serves MathJax from the site itself, so that math is typeset offline.

scripts/fetch_mathjax.py downloads the pinned MathJax once into .cache/mathjax/ (or
$MINIGPT_MATHJAX_DIR); this hook refuses to build without it, and copies it into the site
under javascripts/mathjax/, where mkdocs.yml's extra_javascript loads it.
"""

from __future__ import annotations

import os
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
MATHJAX_URI = "javascripts/mathjax"
MATHJAX_ENTRY = "tex-mml-chtml.js"
FETCH_COMMAND = "python scripts/fetch_mathjax.py"


def mathjax_dir() -> Path:
    """Same default and variable as scripts/fetch_mathjax.py."""
    return Path(os.environ.get("MINIGPT_MATHJAX_DIR") or ROOT / ".cache" / "mathjax")


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    entry = mathjax_dir() / MATHJAX_ENTRY
    if not entry.is_file():
        raise PluginError(
            f"MathJax is missing ({entry} not found): the book typesets math with a local copy. "
            f"Fetch it once with `{FETCH_COMMAND}` (needs npm), then build again."
        )
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the local MathJax to the site, under javascripts/mathjax/."""
    source = mathjax_dir()
    for path in sorted(source.rglob("*")):
        if path.is_file():
            uri = f"{MATHJAX_URI}/{path.relative_to(source).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
