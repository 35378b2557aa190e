"""A study on one page: its tables and figures laid out as a paper would, for a laptop.

The Snakemake report shows one item at a time in a pane about 450 px wide at 1400 px: a thesis
table shows four of its seven columns there and a three-panel figure is unreadable. This page
(``results/<study>/index.html``, an item of the report) puts the study's item pages one after
another in a column up to 1200 px wide: a table that is still wider scrolls inside its own box
with its row labels kept in view, and every figure takes the column's width.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from .tables import TABLE_ID

# The column is at most 1200 px wide; tables scroll inside .scroll with their first column (the
# row label) sticky; figures fill the column (their PNGs are wider than it at the report's dpi).
PAGE_STYLE = """
body { font-family: system-ui, sans-serif; color: #111; background: #fff; margin: 0; }
main { max-width: 1200px; margin: 0 auto; padding: 0 1.5em 4em; }
nav ol { columns: 2; font-size: 0.9em; }
section { margin: 2.5em 0; border-top: 1px solid #ddd; }
h2 { font-size: 1.15em; margin: 1em 0 0.4em; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.82em; }
caption { caption-side: top; text-align: left; max-width: 60em; padding-bottom: 0.6em; white-space: normal; }
th, td { padding: 0.2em 0.6em; border-bottom: 1px solid #ccc; text-align: left; }
td { font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody th { font-weight: normal; }
thead th { border-bottom: 2px solid #333; }
tbody tr > :first-child { position: sticky; left: 0; background: #fff; }
td.best { font-weight: bold; }
p.note { max-width: 60em; font-style: italic; }
figure { margin: 0; }
figure img { width: 100%; height: auto; }
figcaption { max-width: 60em; margin-top: 0.8em; }
.literal { font-family: monospace; }
"""

_BODY = re.compile(r"<body>\s*(.*?)\s*</body>", re.S)
_HEADING = re.compile(r"<h1>(.*?)</h1>", re.S)
_TABLE = re.compile(r"(<table\b.*?</table>)", re.S)
_EMPTY_TABLE = re.compile(r"<tbody>\s*</tbody>")


def has_data(page_html: str) -> bool:
    """Whether an item page shows something: a figure, or a table with at least one row (the
    thesis comparison of a data set the thesis has no numbers for has none)."""
    return "<figure>" in page_html or ("<table" in page_html and not _EMPTY_TABLE.search(page_html))


def section(page_html: str, anchor: str) -> tuple[str, str]:
    """One item page (``dmbn.report.page``: a heading, notes, a table or a figure) as a section of
    the study page: (its heading's text, the section's HTML). The heading becomes an ``h2`` with
    ``anchor``; a table is wrapped to scroll inside the column."""
    found = _BODY.search(page_html)
    if not found:
        raise ValueError(f"not a dmbn item page (no <body>): section {anchor!r}")
    body = found.group(1)
    heading = _HEADING.search(body)
    title = heading.group(1) if heading else anchor
    body = _HEADING.sub(lambda m: f'<h2 id="{anchor}">{m.group(1)}</h2>', body, count=1)
    body = _TABLE.sub(lambda m: f'<div class="scroll">{m.group(1)}</div>', body)
    # every item page's table has the same fixed id (dmbn.tables.TABLE_ID): one per section here
    body = body.replace(f"T_{TABLE_ID}", f"T_{TABLE_ID}-{anchor}")
    return title, f"<section>\n{body}\n</section>"


def study_page(study: str, item_pages: list[str]) -> str:
    """The study's page: a contents list, then every item page with data (``has_data``) as a
    section, in the given order."""
    sections = [section(text, f"item-{i + 1}") for i, text in enumerate(p for p in item_pages if has_data(p))]
    contents = "\n".join(f'<li><a href="#item-{i + 1}">{title}</a></li>' for i, (title, _) in enumerate(sections))
    title = f"{study}: every table and figure"
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{PAGE_STYLE}</style>\n</head>\n<body>\n<main>\n"
            f"<h1>{html.escape(title)}</h1>\n<nav><ol>\n{contents}\n</ol></nav>\n"
            + "\n".join(body for _, body in sections) + "\n</main>\n</body>\n</html>\n")


def write_study_page(path: str | Path, study: str, item_pages: list[str | Path]) -> None:
    """Write the page of ``study`` from its item pages' files (in reading order)."""
    Path(path).write_text(study_page(study, [Path(p).read_text(encoding="utf-8") for p in item_pages]),
                          encoding="utf-8")
