"""A study's tables as files: the thesis's layout per data set, the thesis's numbers beside ours,
and the paired comparisons. Each is a CSV (unrounded, for reuse), its LaTeX and an HTML page with
its caption. The workflow's ``table`` and ``compare`` rules write them under ``results/``;
``docs/rerender.py`` renders a published study's again from its committed ``metrics.csv``
when only the presentation changes (the numbers are the same file)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from .report import rst_to_html, write_page
from .tables import (html, paired_comparisons, paired_display, styled, summary, thesis_comparison,
                     thesis_gaps, thesis_styler, thesis_table, to_latex)


class TableFiles(NamedTuple):
    """Where one table goes: its CSV, LaTeX and HTML page, and the rst caption the page shows."""

    csv: str | Path
    tex: str | Path
    page: str | Path
    caption: str | Path


def _caption(files: TableFiles) -> str:
    return rst_to_html(Path(files.caption).read_text())


def write_thesis_table(metrics: pd.DataFrame, study: str, dataset: str, decimals: int,
                       files: TableFiles) -> None:
    """One data set's table in the thesis's layout (``tables.thesis_table``, ties bold)."""
    rows = summary(metrics[metrics.dataset == dataset])
    csv, latex = thesis_table(rows, decimals)
    csv.to_csv(files.csv, index=False)
    Path(files.tex).write_text(latex)
    table = html(thesis_styler(rows, decimals), decimals, _caption(files))
    write_page(files.page, f"{study}: {dataset}, the thesis's layout", [table])


def write_comparisons(metrics: pd.DataFrame, paper: pd.DataFrame, study: str,
                      paper_names: dict[str, str], decimals: int, confidence: float,
                      thesis: TableFiles, paired: TableFiles) -> None:
    """The thesis's numbers beside ours (with the data sets and regimes it has none for), and the
    paired comparisons, shown as "+0.0039 [+0.0016, +0.0063]" with n."""
    versus_thesis = thesis_comparison(summary(metrics), paper, paper_names, confidence)
    differences = paired_comparisons(metrics, confidence)
    # differences are an order of magnitude below the values: one more decimal than the tables
    shown = paired_display(differences, decimals + 1)
    for raw, frame, files, title, notes in (
            (versus_thesis, versus_thesis, thesis, "the thesis's numbers beside ours",
             thesis_gaps(metrics, paper, paper_names)),
            (differences, shown, paired, "paired comparisons", [])):
        raw.to_csv(files.csv, index=False)  # the unrounded numbers; LaTeX and page show `frame`
        Path(files.tex).write_text(to_latex(frame, decimals))
        write_page(files.page, f"{study}: {title}", [html(styled(frame), decimals, _caption(files))], notes)
