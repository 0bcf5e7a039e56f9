"""Output is inert: names are user input, and nothing quantbench writes lets them act.

A model name, a model file's path, a dataset's path and class names, and an error reason
all hold a script tag, a table pipe, a newline and terminal escape sequences. They go
through real runs, report, compare, show and runs: the Markdown rendered by Python-Markdown
has no live HTML and intact tables, and no control character reaches stdout or stderr.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from quantbench.cli import main
from quantbench.inert import md_code, md_document, md_text, terminal_text

EVIL = "<script>alert(1)</script>|x\ny\x1b]0;pwned\x07\x1b[2J"
# What a reader sees of EVIL in rendered Markdown (one line; control characters shown).
EVIL_SHOWN = "<script>alert(1)</script>|x y\\x1b]0;pwned\\x07\\x1b[2J"
# On a terminal: kept newlines and tabs, nothing else below 0x20, no DEL, no C1.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

NET = """import torch


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class Broken(Net):
    def forward(self, x):
        raise RuntimeError({evil!r})
"""


class _Page(HTMLParser):
    """The tags of a rendered page, and each table's rows as cell counts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.tables: list[list[int]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append(0)
        elif tag in ("td", "th"):
            self.tables[-1][-1] += 1

    def handle_data(self, data):
        self.text.append(data)


def rendered(md_text_: str) -> _Page:
    import markdown

    page = _Page()
    page.feed(markdown.markdown(md_text_, extensions=["tables", "fenced_code", "sane_lists"]))
    return page


ALLOWED_TAGS = {"h1", "h2", "h3", "h4", "p", "ul", "ol", "li", "strong", "em", "code", "pre",
                "table", "thead", "tbody", "tr", "th", "td", "img", "blockquote", "hr", "br",
                "a"}  # fmt: skip


def assert_inert_markdown(path: Path, must_show: list[str]) -> None:
    text = path.read_text(encoding="utf-8")
    assert not CONTROL.search(text), f"control character in {path.name}"
    page = rendered(text)
    tags = {t for t, _ in page.tags}
    assert tags <= ALLOWED_TAGS, f"{path.name}: live HTML {tags - ALLOWED_TAGS}"
    for tag, attrs in page.tags:
        if tag == "a":
            assert re.match(r"(https?:|#|mailto:)", attrs.get("href", "")), attrs
        if tag == "img":
            assert not re.match(r"\w+:", attrs.get("src", "")), attrs
    for rows in page.tables:  # every row has the header's cells: no pipe or newline broke one
        assert rows and all(n == rows[0] for n in rows), f"{path.name}: broken table {rows}"
    shown = "".join(page.text)
    for s in must_show:
        assert s in shown, f"{path.name} does not show {s!r}"


def assert_inert_terminal(out: str, err: str) -> None:
    for stream in (out, err):
        found = CONTROL.search(stream)
        assert found is None, f"control character {found.group(0)!r} printed: {stream!r}"


# --------------------------------------------------------------------------- helpers


def test_helpers():
    assert md_text(EVIL) == (
        "&lt;script>alert(1)&lt;/script>\\|x y\\\\x1b]0;pwned\\\\x07\\\\x1b[2J"
    )
    assert md_text(md_text("a|b")) == md_text("a|b")  # Markdown is not escaped twice
    assert md_code("resnet18") == "`resnet18`" and md_code("a`b") == "a\\`b"
    assert terminal_text(EVIL) == "<script>alert(1)</script>|x\ny\\x1b]0;pwned\\x07\\x1b[2J"
    assert terminal_text("\u202eevil\x9b") == "\\u202eevil\\x9b"
    doc = md_document("[a](javascript:x) [b](https://x) ![c](plots/c.png) <img src=x> `<i>`")
    page = rendered(doc)
    assert [(t, a.get("href") or a.get("src")) for t, a in page.tags if t in ("a", "img")] == [
        ("a", "https://x"),
        ("img", "plots/c.png"),
    ]
    assert "<i>" in "".join(page.text)  # a code span shows what it holds


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def evil_runs(tmp_path_factory):
    """Two real runs of a tiny model named EVIL, from a file in a directory named EVIL,
    scored on an image folder in a directory named EVIL whose classes are named EVIL, with
    a second model whose every forward pass raises an error whose message is EVIL."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("inert")
    where = root / EVIL.replace("\n", "_")  # "/" nests directories; the name keeps "\n"
    where.mkdir(parents=True)
    (where / "net.py").write_text(NET.format(evil=EVIL))
    data = where / "data"
    rng = np.random.default_rng(0)
    for label in ("a" + EVIL.replace("\n", "_"), "b|<b>bold</b>"):
        (data / label).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(data / label / f"{i}.png")
    cfg = {
        "models": [
            {"name": EVIL, "source": "python", "path": str(where / "net.py"), "arch": "Net"},
            {"name": "broken" + EVIL, "source": "python", "path": str(where / "net.py"),
             "arch": "Broken"},
        ],
        "recipes": ["fp32", "dynamic-int8"],
        "measure": ["size", "latency"], "image_sizes": [8], "vision_batch_sizes": [1],
        "ref_image_size": 8, "min_runs": 2, "min_time_s": 0.0, "warmup": 1, "max_warmup": 1,
        "dataset": {"path": str(data), "resize": 8, "crop": 8},
        "isolate": False,
    }  # fmt: skip
    (root / "exp.yaml").write_text(yaml.safe_dump(cfg))
    store = root / "store.db"
    outs = []
    for i in range(2):
        out = where / f"run{i}"
        rc = main(["run", "--config", str(root / "exp.yaml"), "--out", str(out),
                   "--store", str(store), "--no-progress"])  # fmt: skip
        assert rc == 0
        outs.append(out)
    return root, store, outs


def _run_id(out: Path) -> str:
    import json

    return json.loads((out / "results.json").read_text())["run"]["id"]


def test_run_report_and_terminal_are_inert(evil_runs, capfd):
    root, store, (out, _) = evil_runs
    capfd.readouterr()
    assert main(["report", str(out)]) == 0
    assert_inert_terminal(*capfd.readouterr())
    data = terminal_text(str(out.parent / "data"))  # the dataset's path, as shown
    assert_inert_markdown(out / "report.md", [EVIL_SHOWN, f"Evaluation data: {data}."])
    html = (out / "report.html").read_text()
    assert html.count("<script>") == 1  # the page's own table sorter, nothing else
    assert "<b>bold" not in html and not CONTROL.search(html)


def test_show_runs_compare_are_inert(evil_runs, capfd, tmp_path):
    root, store, outs = evil_runs
    ids = [_run_id(o) for o in outs]
    capfd.readouterr()
    for argv in (["show", ids[0], "--store", str(store)], ["runs", "--store", str(store)],
                 ["compare", *ids, "--store", str(store), "--out", str(tmp_path / "cmp")],
                 ["compare", *ids, "--machines", "--store", str(store),
                  "--out", str(tmp_path / "machines")]):  # fmt: skip
        assert main(argv) == 0, argv
        out, err = capfd.readouterr()
        assert_inert_terminal(out, err)
        assert "pwned" in out, argv  # the names are there, made visible
    assert_inert_markdown(tmp_path / "cmp" / "compare.md", [EVIL_SHOWN])
    assert_inert_markdown(tmp_path / "machines" / "compare.md", [EVIL_SHOWN])


def test_error_reasons_are_inert(evil_runs, capfd):
    """The broken model's reason (its exception's message) is in the report and in show."""
    root, store, (out, _) = evil_runs
    text = (out / "report.md").read_text()
    assert "RuntimeError: &lt;script>alert(1)&lt;/script>\\|x" in text
    assert main(["show", _run_id(out), "--store", str(store)]) == 0
    shown, err = capfd.readouterr()
    assert_inert_terminal(shown, err)
    assert "RuntimeError: <script>alert(1)</script>|x" in shown


def test_errors_on_the_terminal_are_inert(tmp_path, capfd):
    """Input errors quote the bad name back: one line, control characters shown."""
    for argv in (["run", "--models", EVIL, "--out", str(tmp_path / "o")],
                 ["show", EVIL, "--store", str(tmp_path / "none.db")],
                 ["run", "--models", "squeezenet", "--recipe-options",
                  "{static-int8: {per_channel: '\x1b[2J\x1b]0;pwned\x07'}}"],
                 ["report", str(tmp_path / EVIL.replace("\n", "_"))]):  # fmt: skip
        assert main(argv) == 2, argv
        out, err = capfd.readouterr()
        assert_inert_terminal(out, err)
        assert err.count("\n") == 1 and err.startswith("quantbench: error: "), err


def test_csv_export_into_a_pipe_is_byte_for_byte(evil_runs, capfd):
    """Data piped out stays the data (a CSV cell holds the name as it is)."""
    root, store, (out, _) = evil_runs
    assert main(["export", _run_id(out), "--format", "csv", "--store", str(store)]) == 0
    data, _ = capfd.readouterr()
    assert EVIL in data


def test_sensitivity_is_inert(evil_runs, capfd, tmp_path):
    root, _, (out, _) = evil_runs
    model = f"py:{out.parent / 'net.py'}:Net"
    argv = ["sensitivity", model, "--recipe", "dynamic-int8", "--out", str(tmp_path / "s")]
    assert main(argv) == 0
    shown, err = capfd.readouterr()
    assert_inert_terminal(shown, err)
    assert "pwned" in shown
    assert_inert_markdown(tmp_path / "s" / "sensitivity.md", [terminal_text(model)])
