"""Reading one chapter: which code blocks are tangled, and what their attributes say.

A block is tangled when its fence carries braces after the language: ```python {#name}```
(a chunk), ```python {#name .append}``` (a continuation) or ```python {file=minigpt/x.py}```
(a file root). Everything else is prose or an illustration, and is left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

PACKAGE = "minigpt"
# File types a root may generate: they need a line comment for the header and the markers.
COMMENT_PREFIX = {
    ".py": "#", ".pyi": "#", ".toml": "#", ".cfg": "#", ".ini": "#",
    ".txt": "#", ".yaml": "#", ".yml": "#", ".sh": "#",
}
KNOWN_ATTRIBUTES = "#name, .append and file=PATH"

# Up to three spaces of indentation: a deeper fence is an indented example, never tangled.
FENCE_RE = re.compile(r"^(?P<indent> {0,3})(?P<ticks>`{3,}|~{3,})[ \t]*(?P<info>[^`]*?)[ \t]*$")
INFO_RE = re.compile(r"^(?P<lang>[\w+-]*)[ \t]*(?:\{(?P<attrs>[^{}]*)\})?$")
ATTRIBUTE_RE = re.compile(
    r"""\s*(?:\#(?P<name>[^\s}]*)|\.(?P<cls>[^\s}=]+)"""
    r"""|(?P<key>[\w-]+)=(?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)'|(?P<value>[^\s"']+)))"""
)
NAME_RE = re.compile(r"^\w[\w.-]*$")
# A tangle attribute (or an opening brace) in an info string that INFO_RE did not accept:
# ```python file=x or ```python {#a} .append. Quoted text (a title) is removed first.
LOOSE_ATTRIBUTE_RE = re.compile(r"(?:^|\s)(?:\{|#[^\s#]|\.append\b|file=)")
QUOTED_RE = re.compile(r"\"[^\"]*\"|'[^']*'")
REFERENCE_RE = re.compile(r"^(?P<indent>[ \t]*)<<(?P<name>[^\s<>]+)>>[ \t]*$")
# An HTML comment block: a line that begins with <!-- opens it, the first line with --> ends it.
# Everything in between is hidden on the site, so a tangled block there is a mistake.
COMMENT_START_RE = re.compile(r"^ {0,3}<!--")


class TangleError(Exception):
    """A mistake in the book, reported as 'book/FILE.md:LINE: message'."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


class TangleErrors(Exception):
    """Several TangleErrors, reported together so that one run shows every mistake."""

    def __init__(self, errors: list[TangleError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


@dataclass
class Block:
    """One tangled code block of a chapter: a named chunk, a continuation, or a file root."""

    path: str  # the chapter, relative to the project root: 'book/01-data.md'
    fence_line: int  # 1-based line of the opening fence
    lang: str
    name: str | None
    file: str | None
    append: bool
    body: list[str]
    body_line: int  # 1-based line of the first body line

    @property
    def location(self) -> str:
        return f"{self.path}:{self.fence_line}"


def parse_markdown(path: str, text: str) -> list[Block]:
    """Every named or file block of one chapter; TangleError on the first malformed fence."""
    errors: list[TangleError] = []
    blocks = parse_page(path, text, errors)
    if errors:
        raise errors[0]
    return blocks


def parse_page(path: str, text: str, errors: list[TangleError]) -> list[Block]:
    """The tangled blocks of a chapter; mistakes are appended to errors."""
    lines = text.splitlines()
    blocks: list[Block] = []
    start = 0
    comment = None  # the line at which an open HTML comment began
    while start < len(lines):
        fence = FENCE_RE.match(lines[start])
        if not fence:
            comment = comment_at(lines[start], start + 1, comment)
            start += 1
            continue
        end = closing_fence(lines, start + 1, fence["ticks"])
        if end is None:
            errors.append(TangleError(path, start + 1, f"unterminated code fence "
                                      f"'{lines[start].strip()}': close it with {fence['ticks']}"))
            break
        block = block_from_fence(path, start, fence, lines[start + 1 : end], errors)
        if block is not None and comment is not None:
            errors.append(TangleError(path, start + 1, f"a tangled block inside the HTML "
                                      f"comment begun at line {comment}: the site hides it, "
                                      "but its code would be generated; move it out of the "
                                      "comment, or remove its braces"))
        elif block is not None:
            blocks.append(block)
        if comment is not None and any("-->" in line for line in lines[start + 1 : end + 1]):
            comment = None  # for the page, the fence was comment text, and so was its -->
        start = end + 1
    return blocks


def comment_at(line: str, number: int, comment: int | None) -> int | None:
    """The line at which the HTML comment open after this line began; None if none is."""
    if comment is None:
        if not COMMENT_START_RE.match(line):
            return None
        comment, line = number, line.split("<!--", 1)[1]
    return None if "-->" in line else comment


def closing_fence(lines: list[str], start: int, ticks: str) -> int | None:
    """Index of the line closing a fence opened with ticks: same character, at least as long."""
    closing = re.compile(rf"^\s*{re.escape(ticks[0])}{{{len(ticks)},}}\s*$")
    return next((i for i in range(start, len(lines)) if closing.match(lines[i])), None)


def block_from_fence(
    path: str, start: int, fence: re.Match[str], body: list[str], errors: list[TangleError]
) -> Block | None:
    """A Block if the fence is tangled, None for an illustration or another language."""
    info = INFO_RE.match(fence["info"])
    if not info:
        if LOOSE_ATTRIBUTE_RE.search(QUOTED_RE.sub("", fence["info"])):
            errors.append(TangleError(path, start + 1, f"attributes outside braces in "
                                      f"'{fence['ticks']}{fence['info']}': put #name, .append "
                                      f"and file=PATH in one pair of braces after the "
                                      f"language, as in ```python {{#name}}"))
        return None
    lang, attrs = info["lang"], info["attrs"]
    if attrs is None or not (lang == "python" or re.search(r"(^|\s)(#|\.append\b|file=)", attrs)):
        return None  # no braces, or another language's own attributes
    try:
        name, file, append = parse_attributes(attrs)
        check_block_kind(lang, name, file, append)
    except ValueError as e:
        errors.append(TangleError(path, start + 1, str(e)))
        return None
    indent = len(fence["indent"])
    block = Block(path, start + 1, lang, name, file, append,
                  [strip_indent(line, indent) for line in body], start + 2)
    errors.extend(indentation_errors(block))
    return block


def parse_attributes(attrs: str) -> tuple[str | None, str | None, bool]:
    """(name, file, append) from the text in braces; ValueError names what is wrong."""
    name = file = None
    append, position = False, 0
    for match in ATTRIBUTE_RE.finditer(attrs):
        if match.start() != position:
            break
        position = match.end()
        if match["name"] is not None:
            name = check_name(match["name"], name)
        elif match["cls"] == "append":
            append = True
        elif match["key"] == "file" and file is None:
            file = match["dq"] or match["sq"] or match["value"] or ""
        else:
            raise ValueError(f"unknown attribute '{match.group().strip()}' "
                             f"(a tangled block takes {KNOWN_ATTRIBUTES})")
    if attrs[position:].strip():
        raise ValueError(f"unknown attribute '{attrs[position:].strip()}' "
                         f"(a tangled block takes {KNOWN_ATTRIBUTES})")
    return name, file, append


def check_name(name: str, previous: str | None) -> str:
    if previous is not None:
        raise ValueError(f"two names for one block: #{previous} and #{name}")
    if not NAME_RE.match(name):
        raise ValueError(f"bad chunk name '#{name}': use letters, digits, '-', '_' and '.'")
    return name


def check_block_kind(lang: str, name: str | None, file: str | None, append: bool) -> None:
    """ValueError unless the attributes make a chunk, a continuation or a file root."""
    if not lang:
        raise ValueError("a tangled block names its language first: ```python {#name}")
    if name is None and file is None:
        raise ValueError(f"a {lang} block with attributes needs #name or file=PATH "
                         f"(a plain ```{lang} block is an illustration)")
    if append and file is not None:
        raise ValueError("a file root cannot be .append: continue it by its #name instead")
    if append and name is None:
        raise ValueError(".append needs the #name of the chunk it continues")
    if file is not None:
        check_target(file)


def check_target(file: str) -> None:
    """ValueError unless file is a relative path inside the package, of a known file type."""
    path = PurePosixPath(file)
    if not file or "\\" in file or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"file={file}: give a relative path under {PACKAGE}/")
    if path.parts[0] != PACKAGE or len(path.parts) < 2:
        raise ValueError(f"file={file}: generated files must live under {PACKAGE}/")
    if path.as_posix() != file:  # one spelling per file, so that 'defined twice' is caught
        raise ValueError(f"file={file}: write the path as {path.as_posix()}")
    if path.suffix not in COMMENT_PREFIX:
        raise ValueError(f"file={file}: can only generate {', '.join(COMMENT_PREFIX)} files "
                         f"(they need '#' comments for the header)")


def strip_indent(line: str, width: int) -> str:
    """The line without the fence's own indentation (a block inside a list item)."""
    spaces = len(line) - len(line.lstrip(" "))
    return line[min(spaces, width) :]


def indentation_errors(block: Block) -> Iterator[TangleError]:
    for index, line in enumerate(block.body):
        leading = line[: len(line) - len(line.lstrip())]
        if "\t" in leading:
            yield TangleError(block.path, block.body_line + index,
                              "tab in indentation: indent with spaces only")
