"""report.html: the report as one self-contained page.

The markdown report is converted with Python-Markdown; every figure is embedded as a
base64 data URI (the file opens with no network and no plots/ folder beside it); tables
become sortable (click a header) and scroll sideways on a small screen; a print style
keeps it readable on paper.

User-supplied strings (model names, paths, labels) reach the page only as text: every
``<`` is escaped before conversion, so no tag can be injected, and links
or images whose address is not a plain http(s) link, a page anchor or an embedded image
are neutralised.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

_CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --bg: #ffffff; --head: #f3f5f9;
        --good: #1a7f37; --bad: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; color: var(--fg); background: var(--bg); }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.6em; }
h2 { font-size: 1.3em; margin-top: 2em; padding-bottom: 0.25em; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.1em; margin-top: 1.6em; }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
       background: var(--head); padding: 0.05em 0.3em; border-radius: 3px; }
pre code { display: block; padding: 0.8em; overflow-x: auto; }
blockquote { margin: 1em 0; padding: 0.6em 1em; background: #fff8e6; border-left: 4px solid #e9a23b; }
.table-wrap { overflow-x: auto; margin: 0.8em 0 1.2em; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 0.88em; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--head); position: sticky; top: 0; cursor: pointer; user-select: none;
     white-space: nowrap; }
th[data-sort="asc"]::after { content: " \\25B2"; font-size: 0.75em; }
th[data-sort="desc"]::after { content: " \\25BC"; font-size: 0.75em; }
tbody tr:nth-child(even) { background: #fafbfd; }
tbody tr:hover { background: #eef3ff; }
img { max-width: 100%; height: auto; display: block; margin: 0.8em auto; border: 1px solid var(--line);
      border-radius: 6px; }
.pass { color: var(--good); font-weight: 600; }
.fail { color: var(--bad); font-weight: 600; }
footer { color: var(--muted); font-size: 0.85em; margin-top: 3em; }
@media print {
  body { font-size: 10pt; }
  main { max-width: none; padding: 0; }
  th { position: static; cursor: auto; }
  th::after { content: "" !important; }
  .table-wrap { overflow: visible; border: none; }
  h2 { page-break-after: avoid; }
  img, tr { page-break-inside: avoid; }
}
"""

_JS = """
(function () {
  function key(cell) {
    var t = (cell.textContent || "").trim();
    var m = t.replace(/,/g, "").match(/^[-+]?\\d*\\.?\\d+(e[-+]?\\d+)?/i);
    return m ? parseFloat(m[0]) : t.toLowerCase();
  }
  function sortBy(table, col, th) {
    var body = table.tBodies[0];
    if (!body) return;
    var dir = th.getAttribute("data-sort") === "asc" ? "desc" : "asc";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) {
      c.removeAttribute("data-sort");
    });
    th.setAttribute("data-sort", dir);
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      var r = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0)
                                      : (typeof x === "number" ? -1 : 1);
      return dir === "asc" ? r : -r;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table").forEach(function (table) {
    if (!table.tHead) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.title = "sort by this column";
      th.addEventListener("click", function () { sortBy(table, i, th); });
    });
  });
  document.querySelectorAll("td").forEach(function (td) {
    var t = td.textContent.trim();
    if (t === "pass") td.classList.add("pass");
    if (t === "fail") td.classList.add("fail");
  });
})();
"""

_SAFE_HREF = re.compile(r"^(https?://|#|mailto:)", re.I)


def _embed_images(body: str, base: Path) -> str:
    def repl(m: re.Match[str]) -> str:
        src = html.unescape(m.group(1))
        path = (base / src).resolve()
        if src.startswith("data:image/"):
            return m.group(0)
        if ":" in src or not path.is_file() or base.resolve() not in path.parents:
            return 'src="data:,"'  # not ours: never fetched
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    return re.sub(r'src="([^"]*)"', repl, body)


def _neutralise_links(body: str) -> str:
    def repl(m: re.Match[str]) -> str:
        href = html.unescape(m.group(1))
        return m.group(0) if _SAFE_HREF.match(href) else 'href="#"'

    return re.sub(r'href="([^"]*)"', repl, body)


def render_html(markdown_text: str, base_dir: Path, title: str) -> str:
    """The page for ``markdown_text``; image paths are read relative to ``base_dir``."""
    import markdown

    from quantbench.inert import terminal_text

    shown_title = terminal_text(title, keep="")  # a run id from a file: no control codes

    # Every "<" is escaped, code spans included: telling code spans apart the way
    # Markdown does (backslash-escaped backticks, runs of several) is not worth the risk
    # of a model name that opens a tag; a "<" in a code span then shows as "&lt;".
    safe = markdown_text.replace("<", "&lt;")
    body = markdown.markdown(safe, extensions=["tables", "fenced_code", "sane_lists"])
    body = _neutralise_links(_embed_images(body, base_dir))
    body = body.replace("<table>", '<div class="table-wrap"><table>').replace(
        "</table>", "</table></div>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{html.escape(shown_title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<main>\n{body}\n<footer>Generated by quantbench from the results store; every "
        "figure is embedded in this file.</footer>\n</main>\n"
        f"<script>{_JS}</script>\n</body>\n</html>\n"
    )
