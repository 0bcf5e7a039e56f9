"""User text made inert where quantbench writes it: Markdown files and the terminal.

Names are user input: model names, paths, dataset names, recipe option values, and the
error reasons quoted from exceptions (which quote those names again). Written raw they
act: a ``<script>`` tag in report.md runs in any Markdown viewer, a ``|`` or a newline
breaks a table row, an escape sequence on a terminal clears the screen or retitles the
window.

- :func:`md_text` makes a value plain text in Markdown (a table cell or a sentence), and
  :func:`md_code` a code span where the value can be one; every Markdown file passes
  :func:`md_document` on its way to disk.
- :func:`terminal_text` shows control characters as escapes (``\\x1b``). The CLI writes
  through :func:`guard_terminal`, so everything it prints is inert, whoever printed it.

Example::

    >>> md_text("<script>x</script>|a\\nb")
    '&lt;script>x&lt;/script>\\\\|a b'
    >>> terminal_text("\\x1b]0;pwned\\x07ok")
    '\\\\x1b]0;pwned\\\\x07ok'
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Iterator
from typing import Any, TextIO

# C0 controls, DEL, C1 controls, the Unicode line/paragraph separators and the bidi
# embedding/override/isolate controls (they reorder what a reader sees).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(m: re.Match[str]) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def terminal_text(text: str, keep: str = "\n\t") -> str:
    """``text`` with every control character but those in ``keep`` shown as an escape
    (``\\x1b``, ``\\u202e``): printed, it moves no cursor and sets no title.

    >>> terminal_text("a\\tb\\rc", keep="\\t")
    'a\\tb\\\\x0dc'
    """
    return _CONTROL.sub(lambda m: m.group(0) if m.group(0) in keep else _visible(m), text)


# --------------------------------------------------------------------------- Markdown

# Backslash escapes that CommonMark and Python-Markdown (with tables) both honour; '_'
# only where it could open or close emphasis (mobilenet_v2 stays as it is typed), ']'
# only where it would end a link's text (values start no line, so they define no link
# reference: "](" is the one way a link forms).
_MD_PUNCT = re.compile(r"[\\`*|#]|\](?=\()|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
# "<" where it would open a tag, comment or autolink; "&" where it would start an entity.
_HTML_START = re.compile(r"<(?=[A-Za-z/!?])|&(?=#?\w+;)")


class Md(str):
    """Markdown quantbench wrote itself, its values already through :func:`md_text` or
    :func:`md_code`: a table (``report.fmt.md_table``) takes it as it is, where any
    other string is escaped."""


def md_text(value: Any) -> Md:
    """``value`` as plain text in Markdown, on one line: no tag, link, emphasis or code
    span can start in it and no table cell can end in it. ``None`` is ``""``; an
    :class:`Md` is already Markdown and comes back as it is.

    >>> md_text("a_b *c* [x](javascript:y) [CI]")
    'a_b \\\\*c\\\\* [x\\\\](javascript:y) [CI]'
    """
    if isinstance(value, Md):
        return value
    text = "" if value is None else str(value)
    text = " ".join(text.split())  # newlines (and runs of spaces) end rows and paragraphs
    text = _CONTROL.sub(_visible, text)
    text = _MD_PUNCT.sub(lambda m: "\\" + m.group(0), text)
    return Md(_HTML_START.sub(lambda m: "&lt;" if m.group(0) == "<" else "&amp;", text))


_CODE_SAFE = re.compile(r"[^`|<>&\\\s\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def md_code(value: Any) -> Md:
    """``value`` as a code span when it holds nothing a code span would show wrongly or
    let out (a backtick, a pipe, ``<``, ``&``, a backslash, whitespace, control
    characters); else as :func:`md_text`.

    >>> md_code("resnet18"), md_code("a|b")
    ('`resnet18`', 'a\\\\|b')
    """
    text = "" if value is None else str(value)
    return Md(f"`{text}`") if _CODE_SAFE.fullmatch(text) else md_text(text)


_CODE_SPAN = re.compile(r"(?<!\\)(`+)(.+?)(?<!`)\1(?!`)", re.S)
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
# A link or image whose address names a scheme other than http(s)/mailto (javascript:,
# data:, file:...): its "](" is escaped, so it stays text.
_UNSAFE_LINK = re.compile(r"\]\((?=\s*<?\s*[A-Za-z][A-Za-z0-9+.-]*:)(?!\s*<?\s*(?:https?|mailto):)")


def _inert_outside_code(text: str) -> str:
    return _UNSAFE_LINK.sub("]\\(", _TAG_START.sub("&lt;", text))


def md_document(text: str) -> str:
    """A whole Markdown document on its way to disk: control characters (but newlines
    and tabs) shown as escapes; outside code spans, any ``<`` that would open an HTML tag
    written as ``&lt;`` and links to other schemes than http(s) and mailto left as text.
    Values go through :func:`md_text` / :func:`md_code`; this is the net under them.

    >>> md_document("a <b>x</b> `<i>` \\x1b[2J")
    'a &lt;b>x&lt;/b> `<i>` \\\\x1b[2J'
    """
    text = terminal_text(text)
    out, pos = [], 0
    for m in _CODE_SPAN.finditer(text):
        out += [_inert_outside_code(text[pos : m.start()]), m.group(0)]
        pos = m.end()
    out.append(_inert_outside_code(text[pos:]))
    return "".join(out)


# --------------------------------------------------------------------------- terminal


class TerminalGuard:
    """A text stream that shows control characters as escapes before they reach
    ``stream``. Kept: newlines, tabs, and the carriage returns that redraw a progress
    bar (one at the start of a write) or end a line (``\\r\\n``)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, s: str) -> int:
        def one(m: re.Match[str]) -> str:
            c, i = m.group(0), m.start()
            if c in "\n\t" or (c == "\r" and (i == 0 or s[i + 1 : i + 2] == "\n")):
                return c
            return _visible(m)

        self.stream.write(_CONTROL.sub(one, s))
        return len(s)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding, ...
        return getattr(self.stream, name)


@contextlib.contextmanager
def guard_terminal() -> Iterator[None]:
    """Within the block, ``sys.stdout`` and ``sys.stderr`` are :class:`TerminalGuard` s
    (the streams in place before are restored after)."""
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (
        s if s is None or isinstance(s, TerminalGuard) else TerminalGuard(s) for s in old
    )
    try:
        yield
    finally:
        sys.stdout, sys.stderr = old


def data_stream(stream: TextIO) -> TextIO:
    """Where data (a CSV export) goes byte for byte: the stream under a guard when it is
    not a terminal (a pipe or a file keeps the data as it is), else the guard."""
    if isinstance(stream, TerminalGuard) and not stream.isatty():
        return stream.stream
    return stream
