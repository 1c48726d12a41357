"""The hosted book: `mkdocs build --strict` output, checked as files and in a real browser.

The site is built once for this module, into a temporary folder (the notebooks execute, so it
takes a while). Set MINIGPT_SITE_DIR to an already built site to check that one instead; the
Makefile builds `site/` with --strict first and passes it on.

The browser test drives Debian's Chromium (/usr/bin/chromium, or $MINIGPT_CHROMIUM) through
playwright; no browser is downloaded. Without Chromium it is skipped, unless
MINIGPT_REQUIRE_BROWSER=1 (as in CI), where a missing browser is a failure.
"""

from __future__ import annotations

import functools
import html
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page, Request, Route

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tangle  # noqa: E402  (the repo root holds tangle.py, not an installed module)

SITE = "http://site/"  # a base for resolving relative links between pages
FENCE_RE = re.compile(r"^[ \t]*(?P<ticks>`{3,}|~{3,})")
HIGHLIGHT_RE = re.compile(r'<div\b[^>]*\bclass="[^"]*\bhighlight\b[^"]*"')
CHUNK_RE = re.compile(
    r'<div id="(?P<id>[^"]+)" class="[^"]*\bchunk\b[^"]*">(?P<head>.*?)<code>', re.S
)
REF_RE = re.compile(r'<a class="chunk-ref" href="(?P<href>[^"]*)">(?P<text>[^<]*)</a>')
NOTES_RE = re.compile(r'<p class="chunk-notes">(?P<notes>.*?)</p>', re.S)
HREF_RE = re.compile(r'\bhref="(?P<href>[^"]*)"')
ID_RE = re.compile(r'\sid="(?P<id>[^"]*)"')
RESOURCE_RE = re.compile(
    r'<(?:script|img|iframe)\b[^>]*\bsrc="(?P<url>[^"]*)"|'
    r'<link\b[^>]*\bhref="(?P<link>[^"]*)"'
)
TAG_RE = re.compile(r"<[^>]+>")
MATHJAX_JS = "javascripts/mathjax/tex-mml-chtml.js"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# ------------------------------------------------------------------------------ the site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site: $MINIGPT_SITE_DIR, or a fresh `mkdocs build --strict`."""
    if given := os.environ.get("MINIGPT_SITE_DIR"):
        path = Path(given)
        assert (path / "index.html").is_file(), f"MINIGPT_SITE_DIR={given} holds no built site"
        return path
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[book]')")
    path = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(path)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(
            f"mkdocs build --strict failed:\n{result.stdout[-3000:]}{result.stderr[-6000:]}"
        )
    return path


@dataclass
class Chapter:
    """A Markdown page of the nav: its source, tangled blocks and built HTML."""

    src: str  # relative to docs_dir: '06-sampling.md'
    markdown: str
    blocks: list[tangle.Block]
    html: str

    @property
    def url(self) -> str:
        """The page's HTML file, relative to the site root."""
        return html_file(self.src)


def html_file(src: str) -> str:
    path = PurePosixPath(src)
    if path.name == "index.md":
        return str(path.with_suffix(".html"))
    return str(path.with_suffix("") / "index.html")


def nav_markdown() -> list[Path]:
    return [path for path in tangle.nav_pages(ROOT) if path.suffix == ".md" and path.exists()]


@pytest.fixture(scope="module")
def chapters(site: Path) -> list[Chapter]:
    found = []
    for path in nav_markdown():
        src = path.relative_to(ROOT / "book").as_posix()
        text = path.read_text(encoding="utf-8")
        blocks = tangle.parse_markdown(path.relative_to(ROOT).as_posix(), text)
        built = site / html_file(src)
        assert built.is_file(), f"{src} was not built into {built}"
        found.append(Chapter(src, text, blocks, built.read_text(encoding="utf-8")))
    assert found, "the nav names no Markdown page"
    return found


def label(block: tangle.Block) -> str:
    return f"⟨{block.name}⟩" if block.name else str(block.file)


def expected_titles(chapters: list[Chapter]) -> dict[str, list[str]]:
    """Per page, the start of each chunk's title bar: '⟨name⟩ ≡', or '+≡' if it continues."""
    seen: set[str] = set()
    titles: dict[str, list[str]] = {}
    for chapter in chapters:
        for block in chapter.blocks:
            key = block.name or block.file
            titles.setdefault(chapter.src, []).append(
                f"{label(block)} {'+≡' if key in seen else '≡'}"
            )
            seen.add(str(key))
    return titles


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(TAG_RE.sub("", fragment)).split())


@cache
def ids_in(site: Path, page: str) -> frozenset[str]:
    return frozenset(ID_RE.findall((site / page).read_text(encoding="utf-8")))


def resolve(site: Path, page: str, href: str) -> tuple[str, str]:
    """(HTML file relative to the site, fragment) that a link on `page` points to."""
    parts = urlsplit(urljoin(SITE + page, href))
    path = parts.path.lstrip("/")
    if path == "" or path.endswith("/"):
        path += "index.html"
    return path, parts.fragment


def assert_lands(site: Path, page: str, href: str) -> None:
    target, fragment = resolve(site, page, href)
    assert (site / target).is_file(), f"{page}: link {href} points to a missing page {target}"
    assert fragment in ids_in(site, target), f"{page}: link {href}: no id '{fragment}' in {target}"


def fence_openings(markdown: str) -> int:
    """How many outermost code fences a page has (fences inside a fence are its text)."""
    count, closing = 0, None
    for line in markdown.splitlines():
        match = FENCE_RE.match(line)
        if closing is None and match:
            count += 1
            closing = re.compile(
                rf"^[ \t]*{re.escape(match['ticks'][0])}{{{len(match['ticks'])},}}[ \t]*$"
            )
        elif closing is not None and closing.match(line):
            closing = None
    return count


# ------------------------------------------------------------------------- the HTML files


def test_every_fence_is_a_highlighted_block(chapters: list[Chapter]) -> None:
    """A fence Markdown did not take as one (```python file=x) becomes inline code, silently."""
    for chapter in chapters:
        fences = fence_openings(chapter.markdown)
        blocks = len(HIGHLIGHT_RE.findall(chapter.html))
        assert blocks == fences, f"{chapter.src}: {fences} code fences, {blocks} highlighted blocks"


def test_every_chunk_has_a_title_bar(chapters: list[Chapter]) -> None:
    titles = expected_titles(chapters)
    for chapter in chapters:
        shown = [text_of(m["head"]) for m in CHUNK_RE.finditer(chapter.html)]
        expected = titles.get(chapter.src, [])
        assert len(shown) == len(expected), f"{chapter.src}: {len(expected)} chunks, {shown}"
        for title, start in zip(shown, expected, strict=True):
            assert title.startswith(start), f"{chapter.src}: title bar '{title}', not '{start}…'"


def test_html_ids_are_unique(chapters: list[Chapter]) -> None:
    for chapter in chapters:
        twice = [i for i, n in Counter(ID_RE.findall(chapter.html)).items() if n > 1]
        assert not twice, f"{chapter.src}: ids used twice: {twice[:10]}"


def test_references_link_to_their_definitions(site: Path, chapters: list[Chapter]) -> None:
    homes = {b.name: c.url for c in chapters for b in c.blocks if b.name and not b.append}
    for chapter in chapters:
        wanted = [
            m["name"]
            for block in chapter.blocks
            for line in block.body
            if (m := tangle.REFERENCE_RE.match(line))
        ]
        links = list(REF_RE.finditer(chapter.html))
        assert [html.unescape(m["text"]).strip("<>") for m in links] == wanted, chapter.src
        for match, name in zip(links, wanted, strict=True):
            assert resolve(site, chapter.url, match["href"]) == (homes[name], name)
            assert_lands(site, chapter.url, match["href"])


def test_chunk_notes_link_to_real_anchors(site: Path, chapters: list[Chapter]) -> None:
    for chapter in chapters:
        notes = NOTES_RE.findall(chapter.html)
        assert len(notes) == len(chapter.blocks), f"{chapter.src}: a chunk has no notes"
        for note in notes:
            assert note.startswith(("This code is", "This code continues")), note
            for href in HREF_RE.findall(note):
                assert_lands(site, chapter.url, html.unescape(href))


def test_chunk_index_lists_every_chunk_and_file(site: Path, chapters: list[Chapter]) -> None:
    """Each chunk and file is in the index, linked to the block that defines it."""
    page = html_file("chunks.md")
    index = (site / page).read_text(encoding="utf-8")
    targets: dict[str, set[tuple[str, str]]] = {}
    for match in re.finditer(r'<a href="(?P<href>[^"]*)">(?P<text>.*?)</a>', index):
        targets.setdefault(text_of(match["text"]), set()).add(resolve(site, page, match["href"]))
    for chapter in chapters:
        titles = {m["id"]: text_of(m["head"]) for m in CHUNK_RE.finditer(chapter.html)}
        for block in chapter.blocks:
            if block.append:
                continue
            name = label(block)
            homes = {(chapter.url, i) for i, title in titles.items() if title.startswith(name)}
            assert targets.get(name, set()) & homes, f"the index does not link {name} to its home"
            if block.file:
                assert f"<code>{block.file}</code>" in html.unescape(index), block.file


def test_chunk_index_says_what_every_chunk_does(site: Path) -> None:
    index = (site / html_file("chunks.md")).read_text(encoding="utf-8")
    rows = re.findall(r"<tr>(.*?)</tr>", index, re.S)[1:]
    described = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in rows]
    # files: File | Root chunk | What it is | Chapter; chunks: Chunk | What it does | ...
    cells = [text_of(row[2] if len(row) == 4 else row[1]) for row in described if row]
    assert len(cells) > 100 and all(cell.strip() for cell in cells), "a row says nothing"


def test_math_is_marked_up_and_mathjax_is_local(site: Path, chapters: list[Chapter]) -> None:
    assert any('class="arithmatex"' in c.html for c in chapters), "no chapter has math"
    assert (site / MATHJAX_JS).is_file(), "MathJax was not copied into the site"
    assert list((site / "javascripts/mathjax/output/chtml/fonts/woff-v2").glob("*.woff"))
    for chapter in chapters:
        sources = [m["url"] for m in RESOURCE_RE.finditer(chapter.html) if m["url"]]
        assert any(s.endswith(MATHJAX_JS) for s in sources), f"{chapter.src} loads no MathJax"


def test_tutorials_ran(site: Path) -> None:
    """The notebook pages were executed at build time (execute: true), so they show output."""
    tutorials = sorted((ROOT / "book" / "tutorials").glob("*.py"))
    for notebook in tutorials:
        page = site / "tutorials" / notebook.stem / "index.html"
        assert page.is_file(), f"{notebook.name} was not built into {page}"
        assert "jp-OutputArea-output" in page.read_text(encoding="utf-8"), f"{notebook.name}"


def test_no_page_loads_anything_from_the_network(site: Path) -> None:
    for page in sorted(site.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        for match in RESOURCE_RE.finditer(text):
            url = match["url"] or match["link"] or ""
            assert not re.match(r"^(https?:)?//", url), f"{page.relative_to(site)} loads {url}"


def book_validation() -> dict[str, object]:
    """The `validation` section of the book's mkdocs.yml (python tags are not needed for it)."""
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)
    Loader.add_constructor("!ENV", lambda *_: None)  # site_url, from the environment
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)
    assert "validation" in config, "mkdocs.yml has no validation section"
    return config["validation"]


def test_the_books_validation_makes_a_broken_anchor_fail_the_build(tmp_path: Path) -> None:
    """By default mkdocs passes a link to a missing anchor silently; the book's settings don't.

    A two-page site with the book's `validation` section is built with --strict: a link to a
    heading that does not exist fails the build, and the same link to a real heading passes.
    """
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[book]')")
    import yaml

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "other.md").write_text("# Other\n\n## A heading\n", encoding="utf-8")
    config = {"site_name": "validation", "docs_dir": "docs", "nav": ["index.md", "other.md"],
              "validation": book_validation()}
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
               str(tmp_path / "site")]
    results = {}
    for anchor in ("no-such-heading", "a-heading"):
        (docs / "index.md").write_text(f"# Home\n\nSee [the other page](other.md#{anchor}).\n",
                                       encoding="utf-8")
        results[anchor] = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True,
                                         text=True, check=False)
    broken, good = results["no-such-heading"], results["a-heading"]
    assert broken.returncode != 0 and "no-such-heading" in broken.stdout + broken.stderr
    assert good.returncode == 0, good.stderr


# ---------------------------------------------------------------------------- the browser


def chromium_path() -> str | None:
    given = os.environ.get("MINIGPT_CHROMIUM")
    if given:
        return given if Path(given).is_file() else None
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def browser_unavailable(reason: str) -> None:
    if os.environ.get("MINIGPT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"MINIGPT_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[str]:
    """The site over HTTP on 127.0.0.1 (a free port), as a base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser_page(server: str) -> Iterator[tuple[Page, list[str]]]:
    """A Chromium page that may only reach the local server; and the list of refused URLs."""
    executable = chromium_path()
    if executable is None:
        browser_unavailable("Chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        browser_unavailable("the playwright package is not installed")
    refused: list[str] = []

    def only_local(route: Route, request: Request) -> None:
        if request.url.startswith(server) or request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            refused.append(request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.route("**/*", only_local)
        yield page, refused
        browser.close()


def first_page_with(chapters: list[Chapter], marker: str) -> Chapter:
    found = next((c for c in chapters if marker in c.html), None)
    assert found is not None, f"no chapter has {marker}"
    return found


def test_browser_follows_a_reference(
    browser_page: tuple[Page, list[str]], server: str, chapters: list[Chapter]
) -> None:
    page, refused = browser_page
    chapter = first_page_with(chapters, 'class="chunk-ref"')
    page.goto(server + chapter.url.removesuffix("index.html"))
    assert page.locator(".chunk .filename .chunk-name").first.is_visible()
    reference = page.locator("a.chunk-ref").first
    name = reference.inner_text().strip().strip("<>")
    reference.click()
    page.wait_for_function(f"location.hash === '#{name}'")
    target = page.locator(f"[id='{name}']")
    page.wait_for_function(
        "el => (r => r.top < innerHeight && r.bottom > 0)(el.getBoundingClientRect())",
        arg=target.element_handle(),
    )
    assert target.locator("span.filename").inner_text().startswith(f"⟨{name}⟩")
    assert not refused, f"the page asked the network for {refused}"


def test_browser_typesets_math(
    browser_page: tuple[Page, list[str]], server: str, chapters: list[Chapter]
) -> None:
    page, refused = browser_page
    chapter = first_page_with(chapters, 'class="arithmatex"')
    page.goto(server + chapter.url.removesuffix("index.html"))
    page.wait_for_selector("mjx-container", timeout=20_000)
    marked = page.locator(".arithmatex").count()
    assert page.locator(".arithmatex mjx-container").count() == marked
    assert page.locator("mjx-merror").count() == 0, "MathJax reports a TeX error"
    assert not refused, f"the page asked the network for {refused}"


def test_browser_search_answers(
    browser_page: tuple[Page, list[str]], server: str, chapters: list[Chapter]
) -> None:
    page, refused = browser_page
    query = next(b.name for c in chapters for b in c.blocks if b.name)
    page.goto(server)
    search = page.locator("input.md-search__input")
    search.click()
    ready = ".md-search-result__meta:has-text('Type to start searching')"
    page.wait_for_selector(ready, timeout=20_000)  # the search worker has loaded its index
    search.press_sequentially(query.split("-")[0], delay=20)
    page.wait_for_selector(".md-search-result__item", timeout=20_000)
    assert page.locator(".md-search-result__item").count() > 0
    assert not refused, f"the page asked the network for {refused}"


WIDE_BLOCKS = """() => [...document.querySelectorAll('.md-content pre > code')]
    .filter(code => code.scrollWidth > code.clientWidth + 1)
    .map(code => code.innerText.split('\\n').reduce((a, b) => (b.length > a.length ? b : a), ''))"""


def test_browser_shows_code_without_sideways_scrolling(
    browser_page: tuple[Page, list[str]], server: str, chapters: list[Chapter]
) -> None:
    """At 1400 px, a laptop's width, a code line of the book (at most 100 characters) fits its
    block; only a few long outputs (an error message, a token listing) may scroll."""
    page, refused = browser_page
    page.set_viewport_size({"width": 1400, "height": 900})
    wide = []
    for chapter in chapters:
        page.goto(server + chapter.url.removesuffix("index.html"))
        wide += [f"{chapter.src}: {len(line)} characters: {line[:50]}"
                 for line in page.evaluate(WIDE_BLOCKS)]
    assert len(wide) <= 5, "\n".join(wide)
    assert all(int(w.split(": ")[1].split()[0]) > 100 for w in wide), "\n".join(wide)
    assert not refused, f"the page asked the network for {refused}"


@pytest.mark.parametrize("address", ["https://example.org/minigpt/", None])
def test_the_site_url_is_the_one_the_pages_workflow_gives(address: str | None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """mkdocs.yml reads site_url from SITE_URL (set by the Pages workflow); a local build has
    none (and so no canonical links)."""
    config_module = pytest.importorskip("mkdocs.config")
    if address is None:
        monkeypatch.delenv("SITE_URL", raising=False)
    else:
        monkeypatch.setenv("SITE_URL", address)
    config = config_module.load_config(str(ROOT / "mkdocs.yml"))
    assert config["site_url"] == address
    workflow = (ROOT / ".github" / "workflows" / "pages.yml").read_text(encoding="utf-8")
    assert "SITE_URL: ${{ steps.pages.outputs.base_url }}/" in workflow
