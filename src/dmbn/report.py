"""What the Snakemake report shows: its items in the thesis's order, and the HTML pages that put
a study's tables (with their captions) into the report instead of CSV downloads."""

from __future__ import annotations

import base64
import html
from pathlib import Path

# Items of one data set, in the thesis's order: its table, Figures 5.1-5.3, then the others.
# The report sorts items by their first label, alphabetically: hence the leading ordinal.
FIGURES = {  # one per data set and regime (the network: the first BN architecture of the study)
    "beta_star": "Fig. 5.1: DMBN's β* per epoch",
    "esm_dmbn_vs_default": "Fig. 5.2: ESM, DMBN against β = 0.1",
    "esm_dmbn_vs_bnbfn": "Fig. 5.3: ESM, DMBN against BN-BFN",
    "beta_star_heatmap": "β* per layer and epoch",
    "esm_vs_depth": "ESM per layer, every estimator",
    "accuracy_vs_beta": "Test accuracy against β",
}
RUN_FIGURES = {  # one per data set, regime and architecture
    "training": "Training curves",
    "esm_layers": "ESM per layer and epoch",
}
BATCH_FIGURES = {  # one per data set of a study with `batch_sizes` (the first BN architecture)
    "accuracy_vs_batch_size": "Test accuracy against batch size",
    "esm_vs_batch_size": "ESM at the last epoch against batch size",
    "beta_star_vs_batch_size": "β* against batch size",
}
SHIFT_FIGURES = {  # one per data set of a study with `shift: true`
    "shift_examples": "Corrupted test images, each corruption and severity",
    "shift_severity_curves": "Accuracy under corruption against severity",
    "shift_esm_vs_accuracy": "ESM against the shifted statistics, and accuracy",
}
SHIFT_TABLES = {  # one per data set of a study with `shift: true` (dmbn.shift_tables)
    "shift_corruptions": "Table: accuracy under each corruption",
    "shift_severities": "Table: accuracy under corruption per severity",
    "shift_relative": "Table: error relative to the default EMA (mCE-style)",
    "shift_streams": "Table: test-time rows on non-i.i.d. streams",
}
DATASET_ITEMS = {"table": "Table: the thesis's layout", **FIGURES, **RUN_FIGURES,
                 "batch_table": "Table: test accuracy against batch size", **BATCH_FIGURES, **SHIFT_TABLES,
                 **SHIFT_FIGURES}
ALL_FIGURES = {**FIGURES, **RUN_FIGURES, **BATCH_FIGURES, **SHIFT_FIGURES}
STUDY_ITEMS = {  # items that cover every data set of a study
    "study_page": "The whole study on one page (for a laptop)",
    "thesis": "The thesis's numbers beside ours",
    "paired": "Paired comparisons",
    "run_cards": "Run cards: what produced each run",
    "metrics": "Metrics of every run and estimator",
}
ALL_DATASETS = "all data sets"
ALL_REGIMES = "all regimes"

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #111; background: #fff; }
table { border-collapse: collapse; margin: 1em 0 2em; font-size: 0.9em; }
caption { caption-side: top; text-align: left; max-width: 60em; padding-bottom: 0.6em; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #ccc; text-align: left; }
td { font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody th { font-weight: normal; }
thead th { border-bottom: 2px solid #333; }
p.note { max-width: 60em; font-style: italic; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; }
figcaption { max-width: 60em; margin-top: 0.8em; }
.literal { font-family: monospace; }
"""


def item_label(name: str) -> str:
    """The report's label of an item, ordinal first (zero-padded: the report sorts labels as text)
    so the report lists items in the thesis's order."""
    items = DATASET_ITEMS if name in DATASET_ITEMS else STUDY_ITEMS
    return f"{list(items).index(name) + 1:0{len(str(len(items)))}d}. {items[name]}"


def rst_to_html(text: str) -> str:
    """A caption (reStructuredText, as Snakemake's report captions) as an HTML fragment."""
    from docutils.core import publish_parts
    from docutils.writers.html5_polyglot import Writer

    return publish_parts(text, writer=Writer(), settings_overrides={"report_level": 4})["fragment"]


def page(title: str, parts: list[str], notes: list[str] = ()) -> str:
    """A standalone HTML page: a heading, notes (plain text) and the parts (HTML: tables, figures)."""
    body = "\n".join([f"<h1>{html.escape(title)}</h1>",
                      *(f'<p class="note">{html.escape(n)}</p>' for n in notes), *parts])
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


def write_page(path: str | Path, title: str, parts: list[str], notes: list[str] = ()) -> None:
    Path(path).write_text(page(title, parts, notes), encoding="utf-8")


def figure(png: str | Path, caption_html: str, alt: str) -> str:
    """A figure (the PNG, embedded) with its caption below it, as an HTML fragment."""
    data = base64.b64encode(Path(png).read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
            f"<figcaption>{caption_html}</figcaption></figure>")


def write_figure_pages(pngs: list[str], htmls: list[str], captions: list[str], title: str) -> None:
    """One page per figure (the PNGs, in order, beside their pages and rst captions)."""
    for png, out, caption in zip(pngs, htmls, captions):
        name = Path(png).stem
        heading = f"{ALL_FIGURES[name]} · {title}"
        write_page(out, heading, [figure(png, rst_to_html(Path(caption).read_text()), heading)])
