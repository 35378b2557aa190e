"""Render a published study's tables again from its committed ``metrics.csv``, with today's
presentation (bold ties, the paired cells): the thesis layout per data set and the two comparison
tables, exactly as the workflow's ``table`` and ``compare`` rules write them (``dmbn.study_tables``).

    .venv/bin/python docs/rerender_tables.py quickstart mlp

Only presentation changes: the CSVs are rewritten from the same numbers and must come out equal
(``tests/test_tables.py`` regenerates every published table and compares). The batch-size tables
are not touched. Run cards and figures keep the commit they were made at."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

from dmbn.config import load_strict, report_settings  # noqa: E402
from dmbn.readback import read_study_file  # noqa: E402
from dmbn.study_tables import TableFiles, write_comparisons, write_thesis_table  # noqa: E402

BATCH_AXIS = "_batch_sizes"  # the batch_table rule's tables, left as they are
CAPTIONS = ROOT / "workflow/report"


def rerender(study: str, config: dict) -> None:
    folder = HERE / "results" / study
    metrics = read_study_file(folder / "metrics.csv")
    report = report_settings(config, study)
    datasets = sorted(metrics.dataset.unique())
    for dataset in datasets:
        out = folder / "tables" / dataset
        write_thesis_table(metrics, study, dataset, report["decimals"],
                           TableFiles(out.with_suffix(".csv"), out.with_suffix(".tex"),
                                      out.with_suffix(".html"), CAPTIONS / "table.rst"))
    names = {d: config["datasets"][d].get("paper_name", d) for d in datasets}
    comparisons = folder / "comparisons"

    def files(name: str, caption: str) -> TableFiles:
        return TableFiles(*(comparisons / f"{name}.{ext}" for ext in ("csv", "tex", "html")), CAPTIONS / caption)

    write_comparisons(metrics, pd.read_csv(ROOT / "workflow/resources/paper_tables.csv"), study, names,
                      report["decimals"], report["confidence"],
                      thesis=files("thesis", "thesis_comparison.rst"), paired=files("paired", "paired.rst"))
    print(f"{study}: {len(datasets)} thesis table(s) and 2 comparison tables rendered in {folder}")


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    config = load_strict(ROOT / "config.yaml")
    for study in argv:
        rerender(study, config)


if __name__ == "__main__":
    main(sys.argv[1:])
