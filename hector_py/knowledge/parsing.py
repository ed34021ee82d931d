"""Documents to text blocks: each block is a paragraph-like piece under a heading, with a
locator a reply can cite (an HTML anchor, or a line range).

HTML goes through selectolax's Lexbor engine (a maintained, spec-following HTML5 parser
with prebuilt wheels, several times faster than lxml or BeautifulSoup on the Python docs)
and Markdown through markdown-it-py (CommonMark, already installed with rich), whose
tokens carry their source lines. Plain text is split on blank lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from markdown_it import MarkdownIt
from selectolax.lexbor import LexborHTMLParser, LexborNode

HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
SNIFF_BYTES = 8192


class UnusableFile(Exception):
    """A file that cannot be indexed; ``reason`` is a bounded label (``binary``...)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Block:
    """A paragraph-like piece of a document under ``heading``; ``locator`` says where."""

    heading: str
    locator: str
    text: str


@dataclass(frozen=True)
class Document:
    """A parsed file: its title and blocks in reading order."""

    title: str
    blocks: list[Block]


def parse(path: str, data: bytes) -> Document:
    """The blocks of the file at ``path`` (for its type) whose bytes are ``data``.

    Raises ``UnusableFile`` for binary content or text that is not UTF-8.
    """
    if b"\x00" in data[:SNIFF_BYTES]:
        raise UnusableFile("binary", "binary content (NUL bytes)")
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in HTML_SUFFIXES:
        return _html(data, PurePosixPath(path).stem)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnusableFile("encoding", f"not UTF-8 text (byte {exc.start})") from None
    if suffix in MARKDOWN_SUFFIXES:
        return _markdown(text, PurePosixPath(path).stem)
    return _plain(text, PurePosixPath(path).stem)


# --- HTML ---------------------------------------------------------------------------------

_SKIP = "script, style, noscript, template, nav, header, footer, svg, form"  # one CSS pass
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCKS = frozenset(
    {
        *_HEADINGS,
        "p",
        "pre",
        "li",
        "dt",
        "dd",
        "td",
        "th",
        "tr",
        "blockquote",
        "figcaption",
        "caption",
        "section",
        "article",
        "div",
        "table",
        "ul",
        "ol",
        "dl",
        "br",
    }
)
_ANCHORED = frozenset({"section", "article", "div", "dt", *_HEADINGS})


def _clean(text: str) -> str:
    """Whitespace collapsed, without Sphinx's permalink signs."""
    return " ".join(text.replace("¶", " ").split())


def _html(data: bytes, fallback_title: str) -> Document:
    tree = LexborHTMLParser(data)
    # The first h1 names the page; <title> often adds the site's name to every page.
    title_node = tree.css_first("h1") or tree.css_first("title")
    title = _clean(title_node.text()) if title_node is not None else ""
    root = tree.css_first("[role=main]") or tree.css_first("main") or tree.body
    if root is None:
        return Document(title or fallback_title, [])
    for skipped in root.css(_SKIP):
        skipped.decompose(recursive=False)
    blocks: list[Block] = []
    heading, anchor = title, ""
    pieces: list[str] = []

    def flush() -> None:
        if not pieces:
            return
        text = _clean("".join(pieces))
        if text and text != heading:  # a heading's own text is the blocks' heading
            blocks.append(Block(heading, f"#{anchor}" if anchor else "", text))
        pieces.clear()

    node: LexborNode
    for node in root.traverse(include_text=True):
        tag = node.tag
        if tag == "-text":
            pieces.append(node.text_content or "")
            continue
        if tag not in _BLOCKS:
            continue
        flush()
        ident = node.id if tag in _ANCHORED else None
        if ident:
            anchor = ident
        if tag in _HEADINGS:
            heading = _clean(node.text()) or heading
    flush()
    return Document(title or fallback_title, blocks)


# --- Markdown and plain text --------------------------------------------------------------

_MARKDOWN = MarkdownIt("commonmark")


def _lines(start: int, end: int) -> str:
    return f"lines {start}-{end}" if end > start else f"line {start}"


def _markdown(text: str, fallback_title: str) -> Document:
    lines = text.splitlines()
    tokens = _MARKDOWN.parse(text)
    title, heading, blocks = "", "", []
    for index, token in enumerate(tokens):
        if token.level != 0 or token.map is None or token.nesting == -1:
            continue
        start, end = token.map
        if token.type == "heading_open":  # the blocks that follow carry it
            heading = tokens[index + 1].content.strip()
            if token.tag == "h1" and not title:
                title = heading
            continue
        source = "\n".join(lines[start:end]).strip()
        if source:
            blocks.append(Block(heading, _lines(start + 1, end), source))
    return Document(title or fallback_title, blocks)


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def _plain(text: str, fallback_title: str) -> Document:
    blocks = []
    line, position = 1, 0  # the line number at ``position``
    for match in [*_PARAGRAPH_BREAK.finditer(text), None]:
        end = match.start() if match else len(text)
        piece = text[position:end]
        stripped = piece.strip()
        if stripped:
            start = line + piece[: len(piece) - len(piece.lstrip())].count("\n")
            blocks.append(Block("", _lines(start, start + stripped.count("\n")), stripped))
        if match is None:
            break
        line += text.count("\n", position, match.end())
        position = match.end()
    return Document(fallback_title, blocks)
