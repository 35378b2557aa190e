"""Markdown tables for docs/REPRODUCTION.md, generated from a published study's CSVs
(docs/results/<study>/), so that the text and the committed tables cannot disagree.

    python docs/reproduction_tables.py mlp_fashion > /tmp/tables.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ORDER = [f"static-0.{i}" for i in range(1, 10)] + ["dmbn", "bn-bfn", "precise", "cma", "recalibrated"]


def thesis_beside_ours(folder: Path) -> str:
    table = pd.read_csv(folder / "tables" / "fashion-mnist.csv")
    paper = pd.read_csv(folder / "comparisons" / "thesis.csv")
    parts = []
    for regime, title in (("full", "Full batch"), ("mini", "Mini-batch (batch 100)")):
        rows = table[table.regime == regime].set_index("variant").reindex(ORDER).dropna(how="all")
        thesis = paper[(paper.regime == regime)].pivot_table(index="variant", columns="metric", values="thesis")
        out = pd.DataFrame({
            "variant": rows.index,
            "thesis acc.": [thesis.loc[v, "accuracy"] if v in thesis.index else None for v in rows.index],
            "ours acc. (mean ± std)": [f"{m:.3f} ± {s:.3f}" for m, s in zip(rows.accuracy_mean, rows.accuracy_std)],
            "diff.": [(m - thesis.loc[v, "accuracy"]) if v in thesis.index else None
                      for v, m in zip(rows.index, rows.accuracy_mean)],
            "thesis F1": [thesis.loc[v, "f1"] if v in thesis.index else None for v in rows.index],
            "ours F1": [f"{m:.3f} ± {s:.3f}" for m, s in zip(rows.f1_mean, rows.f1_std)],
        })
        out = out.astype(object).where(out.notna(), None)  # no thesis number: shown as "–"
        parts.append(f"**{title}**\n\n" + out.to_markdown(index=False, floatfmt=".3f", missingval="–"))
    return "\n\n".join(parts)


def paired(folder: Path) -> str:
    frame = pd.read_csv(folder / "comparisons" / "paired.csv")
    frame = frame[frame.metric.isin(["accuracy", "f1"])]
    frame = frame.assign(**{"95% CI": [f"[{lo:+.4f}, {hi:+.4f}]" for lo, hi in zip(frame.ci_low, frame.ci_high)]})
    return frame[["regime", "comparison", "metric", "seeds", "mean_difference", "95% CI"]].to_markdown(
        index=False, floatfmt="+.4f")


def main() -> None:
    folder = HERE / "results" / (sys.argv[1] if len(sys.argv) > 1 else "mlp_fashion")
    print("### Table 5.2 (FashionMNIST): the thesis beside this run\n")
    print(thesis_beside_ours(folder))
    print("\n### Paired comparisons over seeds\n")
    print(paired(folder))


if __name__ == "__main__":
    main()
