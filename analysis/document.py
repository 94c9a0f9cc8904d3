"""A tiny document model rendered twice: self-contained HTML and Markdown.

The report is built once as a list of blocks, so ``index.html`` and ``report.md`` cannot drift
apart. Every string is escaped at rendering time (``html.escape`` for HTML; ``<``, ``>``,
``&`` and ``|`` for Markdown, whose viewers pass raw HTML through), so text from the
experiment folder (study names, specs, trial ids) can never inject markup. Images are
embedded as base64 data URIs in the HTML and linked by file name in the Markdown; the HTML
uses no external resource of any kind.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str
    strong: bool = False


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame  # cells are shown with str(); format numbers before


@dataclass(frozen=True)
class Preformatted:
    text: str


@dataclass(frozen=True)
class Image:
    path: Path  # a PNG inside the report folder
    caption: str


Block = Heading | Paragraph | Bullets | Table | Preformatted | Image

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:72em;padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
pre{background:#f6f6f6;padding:.8em;overflow-x:auto;font-size:.85em}
figure{margin:1em 0 2em}img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.9em;color:#555}.answer{font-size:1.1em;background:#eef5ff;padding:.6em .9em}
"""


def to_html(title: str, blocks: list[Block]) -> str:
    """One self-contained HTML page (inline CSS, images as data URIs, everything escaped)."""
    body = "\n".join(_html_block(block) for block in blocks)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def _html_block(block: Block) -> str:
    esc = html.escape
    match block:
        case Heading(text, level):
            return f"<h{level}>{esc(text)}</h{level}>"
        case Paragraph(text, strong):
            return f'<p class="answer">{esc(text)}</p>' if strong else f"<p>{esc(text)}</p>"
        case Bullets(items):
            return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in items) + "</ul>"
        case Table(frame):
            head = "".join(f"<th>{esc(str(c))}</th>" for c in frame.columns)
            rows = "".join(
                "<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>"
                for row in frame.itertuples(index=False)
            )
            return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
        case Preformatted(text):
            return f"<pre>{esc(text)}</pre>"
        case Image(path, caption):
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            return (
                f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
    raise TypeError(f"unknown block {block!r}")


def to_markdown(title: str, blocks: list[Block]) -> str:
    """The same document as Markdown; images are linked by their file name."""
    parts = [f"# {_md(title)}"] + [_md_block(block) for block in blocks]
    return "\n\n".join(parts) + "\n"


def _md(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    )


def _md_block(block: Block) -> str:
    match block:
        case Heading(text, level):
            return f"{'#' * level} {_md(text)}"
        case Paragraph(text, strong):
            return f"**{_md(text)}**" if strong else _md(text)
        case Bullets(items):
            return "\n".join(f"- {_md(item)}" for item in items)
        case Table(frame):
            lines = [
                "| " + " | ".join(_md(str(c)) for c in frame.columns) + " |",
                "|" + "---|" * len(frame.columns),
            ]
            lines += [
                "| " + " | ".join(_md(str(v)) for v in row) + " |"
                for row in frame.itertuples(index=False)
            ]
            return "\n".join(lines)
        case Preformatted(text):
            fence = "`" * max(3, _longest_backtick_run(text) + 1)
            return f"{fence}\n{text}\n{fence}"
        case Image(path, caption):
            alt = _md(caption).replace("[", "\\[").replace("]", "\\]")
            return f"![{alt}]({path.name})"
    raise TypeError(f"unknown block {block!r}")


def _longest_backtick_run(text: str) -> int:
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest
