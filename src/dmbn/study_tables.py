"""A study's tables as files: the thesis's layout per data set, the thesis's numbers beside ours,
and the paired comparisons. Each is a CSV (unrounded, for reuse), its LaTeX and an HTML page with
its caption. The workflow's ``table``, ``thesis_comparison`` and ``paired`` rules write them under
``results/``; ``docs/rerender.py`` renders a published study's again from its committed
``metrics.csv`` when only the presentation changes (the numbers are the same file)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import pandas as pd

from .report import rst_to_html, write_page
from .tables import (PAIRS, html, paired_comparisons, paired_display, styled, summary, thesis_comparison,
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


def write_thesis_comparison(metrics: pd.DataFrame, paper: pd.DataFrame, study: str,
                            paper_names: dict[str, str], decimals: int, confidence: float,
                            files: TableFiles) -> None:
    """The thesis's numbers beside ours, with notes naming the data sets and regimes it has none
    for (the workflow writes it only for a study the thesis covers: ``tables.thesis_covers``)."""
    versus_thesis = thesis_comparison(summary(metrics), paper, paper_names, confidence)
    _write(versus_thesis, versus_thesis, files, decimals, f"{study}: the thesis's numbers beside ours",
           thesis_gaps(metrics, paper, paper_names))


def write_paired(metrics: pd.DataFrame, study: str, decimals: int, confidence: float, files: TableFiles) -> None:
    """The paired comparisons, shown as "+0.0039 [+0.0016, +0.0063]" with n; differences are an
    order of magnitude below the values, so they get one more decimal than the tables."""
    differences = paired_comparisons(metrics, confidence)
    notes = [] if len(differences) else [
        "No comparison: no pair of " + ", ".join(f"{a} − {b}" for a, b in PAIRS)
        + f" has both rows in this study (its estimators: {', '.join(sorted(metrics.estimator.unique()))})."]
    _write(differences, paired_display(differences, decimals + 1), files, decimals, f"{study}: paired comparisons",
           notes)


def _write(raw: pd.DataFrame, shown: pd.DataFrame, files: TableFiles, decimals: int, title: str,
           notes: list[str] = ()) -> None:
    raw.to_csv(files.csv, index=False)  # the unrounded numbers; LaTeX and page show `shown`
    Path(files.tex).write_text(to_latex(shown, decimals))
    write_page(files.page, title, [html(styled(shown), decimals, _caption(files))], notes)
