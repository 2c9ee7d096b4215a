"""Loaders for the text formats: plain text, Markdown and HTML.

Markdown is split by ATX headings only (``#`` lines); setext headings (text underlined
with ``===``) are rare in documentation and ambiguous with tables and front matter, so
they stay body text. HTML goes through BeautifulSoup's pure-Python "html.parser" rather
than lxml so behaviour does not depend on which optional parser is installed; its text is
flattened to one paragraph per line, which is what the chunker and retrieval need, at
the cost of inline formatting.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from genaiops.rag.documents import LoadedDocument, Section
from genaiops.rag.loaders._common import Input, SectionBuilder, decode_text, one_line, reason

if TYPE_CHECKING:
    from bs4.element import PageElement, Tag

# CommonMark ATX heading: up to 3 spaces of indent, 1-6 '#', then a space or end of line.
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$")
# An optional closing run of '#' preceded by a space ("## Title ##").
_ATX_CLOSE = re.compile(r"(?:^|[ \t]+)#+$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT_KEY = re.compile(r"^([A-Za-z_][\w.-]*)[ \t]*:[ \t]*(.*)$")


def load_txt(item: Input) -> list[LoadedDocument]:
    text = decode_text(item).strip("\n")
    return [item.document("txt", item.stem, [Section(text=text)])]


def _front_matter(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    """Split a leading ``---`` block of ``key: value`` lines off the document.

    The block is only taken as front matter when its first line is a ``key: value``
    pair, so a document that merely opens with a horizontal rule keeps its text. Nested
    YAML (lists, indented maps) is dropped from the body but not parsed: only the
    top-level scalar pairs reach the metadata, as we carry no YAML parser here.
    """
    if not lines or lines[0].strip() != "---":
        return {}, lines
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        return {}, lines
    block = [line for line in lines[1:end] if line.strip()]
    if not block or not _FRONT_KEY.match(block[0]):
        return {}, lines
    metadata: dict[str, str] = {}
    for line in block:
        match = _FRONT_KEY.match(line)
        value = match.group(2).strip() if match else ""
        if match and value:
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            metadata[match.group(1)] = value
    return metadata, lines[end + 1 :]


def load_markdown(item: Input) -> list[LoadedDocument]:
    metadata, lines = _front_matter(decode_text(item).split("\n"))
    builder = SectionBuilder()
    fence: str | None = None
    for line in lines:
        fence_match = _FENCE.match(line)
        if fence is not None:
            # A fence closes on a run of the same character at least as long, alone.
            if (
                fence_match
                and fence_match.group(1).startswith(fence)
                and not line.strip(" \t" + fence[0])
            ):
                fence = None
            builder.line(line)
            continue
        if fence_match:
            fence = fence_match.group(1)
            builder.line(line)
            continue
        heading = _ATX.match(line)
        if heading:
            text = _ATX_CLOSE.sub("", heading.group(2) or "").strip()
            builder.heading(len(heading.group(1)), text)
        else:
            builder.line(line)
    sections = builder.finish()
    if not sections:
        raise item.fail("has no text")
    return [item.document("md", builder.first_h1 or item.stem, sections, metadata)]


# Elements whose content is not the document's text.
_DROP = ("script", "style", "nav", "footer", "header", "noscript", "template", "head")
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_CONTENT = ("article", "main", "section")
# Elements that end a line of text before and after them.
_BLOCKS = frozenset(
    {
        *("address", "article", "aside", "blockquote", "caption", "dd", "details", "div"),
        *("dl", "dt", "fieldset", "figcaption", "figure", "form", "li", "main", "ol", "p"),
        *("section", "summary", "table", "tbody", "thead", "tfoot", "ul"),
    }
)


class _HtmlText:
    """Walks the body in document order, one normalised paragraph per line."""

    def __init__(self) -> None:
        self.builder = SectionBuilder()
        self._buffer: list[str] = []

    def flush(self) -> None:
        text = one_line("".join(self._buffer))
        self._buffer = []
        if text:
            self.builder.line(text)

    def walk(self, root: Tag) -> None:
        """Iterative, with None marking the end of a block: pages nest thousands of divs
        deep, which a recursive walk would turn into a RecursionError."""
        from bs4.element import NavigableString, PreformattedString, Tag

        stack: list[PageElement | None] = list(reversed(root.contents))
        while stack:
            node = stack.pop()
            if node is None:
                self.flush()
            elif isinstance(node, NavigableString):
                # Comments, doctypes and CDATA are PreformattedString: not text.
                if not isinstance(node, PreformattedString):
                    self._buffer.append(str(node))
            elif isinstance(node, Tag) and not self._leaf(node):
                if node.name.lower() in _BLOCKS:
                    self.flush()
                    stack.append(None)
                stack.extend(reversed(node.contents))

    def _leaf(self, tag: Tag) -> bool:
        """Handle a tag whose text is taken whole; False for tags to descend into."""
        name = tag.name.lower()
        if name in _HEADINGS:
            self.flush()
            self.builder.heading(_HEADINGS[name], one_line(tag.get_text(" ")))
        elif name == "tr":
            self.flush()
            # Its own cells only: a table nested in a cell is part of that cell's text.
            cells = [one_line(c.get_text(" ")) for c in tag.find_all(["td", "th"], recursive=False)]
            row = " | ".join(c for c in cells if c)
            if row:
                self.builder.line(row)
        elif name == "pre":
            # Code keeps its lines; each is still trimmed of runs of spaces.
            self.flush()
            for line in tag.get_text().split("\n"):
                if line.strip():
                    self.builder.line(one_line(line))
        elif name == "br":
            self.flush()
        else:
            return False
        return True


def _html_parts(text: str) -> tuple[str, list[Section]]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    title_tag = soup.find("title")
    title = one_line(title_tag.get_text(" ")) if title_tag else ""
    for tag in soup.find_all(_DROP):
        # A page's header and footer are chrome; an article's or section's are its own
        # (its title, its author and date).
        if tag.name in ("header", "footer") and tag.find_parent(_CONTENT) is not None:
            continue
        tag.decompose()
    if not title:
        h1 = soup.find("h1")
        title = one_line(h1.get_text(" ")) if h1 else ""
    walker = _HtmlText()
    walker.walk(soup.body or soup)
    walker.flush()
    return title, walker.builder.finish()


def load_html(item: Input) -> list[LoadedDocument]:
    text = decode_text(item)
    try:
        title, sections = _html_parts(text)
    except Exception as exc:  # html.parser is lenient; anything it raises is one bad file
        raise item.fail(f"cannot read HTML: {reason(exc)}") from exc
    if not sections:
        raise item.fail("has no text")
    return [item.document("html", title or item.stem, sections)]
