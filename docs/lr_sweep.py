"""The lr sweep for small batches (issue #27, item 2), from its published studies
(docs/results/lr_sweep_*/summaries/training_curves.csv, each study one lr per batch size as
config.yaml sets it), so that the choice and the page cannot disagree.

    python docs/lr_sweep.py > /tmp/lr_sweep.md

Per batch size and lr: the last epoch's train loss and train accuracy (train mode, over the
epoch), the accuracy on the ESM set with recalibrated statistics (the network's quality with
exact population statistics: the criterion), with PreciseBN's and the default EMA's beside it,
and the change of the train loss over the last ``LATE`` epochs (still falling: more epochs would
help). The criterion is known at the last epoch only: PreciseBN and the recalibrated statistics
are computed once training ends, so the ESM set never scores them per epoch. The chosen lr per
batch size is the one with the highest criterion at the last epoch. The test set plays no part.
The references are the reference study's last-epoch train loss at B = 100 and, since train
mode's loss at a small batch carries the noise of its batch statistics, the criterion itself at
B = 100 in a study that trains as the reference does and publishes curves.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from dmbn.config import load_strict, study_regimes, study_train  # noqa: E402
from dmbn.names import family_batch_size  # noqa: E402

PREFIX = "lr_sweep_"
CRITERION = "esm_accuracy_recalibrated"
SHOWN = {"esm_accuracy_precise": "PreciseBN", "esm_accuracy_static-0.1": "static-0.1"}
LATE = 5  # epochs over which "still rising" is read


def sweep_studies(config: dict) -> list[str]:
    return [name for name in config["studies"] if name.startswith(PREFIX)]


def sweep_curves(published: Path, config: dict, studies: list[str]) -> pd.DataFrame:
    """Every sweep run's training curve, with the lr config.yaml gives its study and regime."""
    frames = []
    for study in studies:
        curves = pd.read_csv(published / study / "summaries" / "training_curves.csv")
        lrs = {regime: study_train(config, study, regime)["lr"] for regime in study_regimes(config, study)}
        frames.append(curves.assign(study=study, lr=curves.regime.map(lrs)))
    return pd.concat(frames, ignore_index=True)


LATE_COLUMN = f"train loss change over the last {LATE} epochs"


def sweep_table(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per batch size, lr and seed: the last epoch's numbers and the change of the train
    loss over the last ``LATE`` epochs (NaN for a shorter run)."""
    rows = []
    for (regime, lr, seed), run in curves.groupby(["regime", "lr", "seed"]):
        run = run.sort_values("epoch")
        last = run.iloc[-1]
        late = last.train_loss - run.train_loss.iloc[-1 - LATE] if len(run) > LATE else float("nan")
        rows.append({"B": family_batch_size(regime), "lr": lr, "seed": seed, "epochs": int(last.epoch),
                     "train loss": last.train_loss, "train accuracy": last.train_accuracy,
                     "ESM-set accuracy, recalibrated": last[CRITERION],
                     **{f"ESM-set accuracy, {label}": last[column] for column, label in SHOWN.items() if column in run},
                     LATE_COLUMN: late})
    return pd.DataFrame(rows).sort_values(["B", "lr", "seed"]).reset_index(drop=True)


def markdown(table: pd.DataFrame) -> str:
    """``table`` with B, seed and epochs as integers and the lr as config.yaml writes it, the
    rest at four decimals (tabulate reads a frame of ints and floats as floats throughout)."""
    def cell(column: str, value: float) -> str:
        if pd.isna(value):
            return "–"
        return str(int(value)) if column in ("B", "seed", "epochs") else f"{value:g}" if column == "lr" else f"{value:.4f}"

    shown = pd.DataFrame({column: [cell(column, v) for v in table[column]] for column in table.columns})
    return shown.to_markdown(index=False, disable_numparse=True, colalign=["right"] * len(shown.columns))


def choices(table: pd.DataFrame) -> pd.DataFrame:
    """Per batch size, the lr with the highest last-epoch criterion (mean over seeds)."""
    per_lr = table.groupby(["B", "lr"])["ESM-set accuracy, recalibrated"].mean().reset_index()
    best = per_lr.loc[per_lr.groupby("B")["ESM-set accuracy, recalibrated"].idxmax()]
    return best.merge(table.groupby(["B", "lr"])["train loss"].mean().reset_index(), on=["B", "lr"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--published", type=Path, default=HERE / "results")
    parser.add_argument("--config", type=Path, default=HERE.parent / "config.yaml")
    parser.add_argument("--reference", default="batch_sweep", help="its B = 100 runs' train loss is the target")
    parser.add_argument("--criterion-reference", default="shift",
                        help="a study with per-epoch curves whose B = 100 runs train as the reference's do: "
                             "their last-epoch criterion is the target (batch_sweep publishes no curves)")
    args = parser.parse_args(argv)
    config = load_strict(args.config)
    studies = [s for s in sweep_studies(config) if (args.published / s).is_dir()]
    if not studies:
        sys.exit(f"no published {PREFIX}* study under {args.published}")
    table = sweep_table(sweep_curves(args.published, config, studies))
    print(f"# The lr sweep: {', '.join(studies)} (criterion: {CRITERION}, the last epoch)\n")
    print(markdown(table) + "\n")
    print("## The lr chosen per batch size\n")
    print(markdown(choices(table)) + "\n")
    reference = args.published / args.reference / "summaries" / "training_last_epoch.csv"
    if reference.is_file():
        ref = pd.read_csv(reference)
        at_100 = ref[ref.regime == "mini-b100"].train_loss
        print(f"{args.reference} at B = 100, last-epoch train loss: {at_100.mean():.4f} ± {at_100.std():.4f} "
              f"(n = {len(at_100)})")
    curves = args.published / args.criterion_reference / "summaries" / "training_curves.csv"
    if curves.is_file():
        ref = pd.read_csv(curves)
        ref = ref[(ref.regime == "mini-b100") & (ref.member == "bank")]
        at_100 = ref[ref.epoch == ref.epoch.max()][CRITERION]
        print(f"\n{args.criterion_reference} at B = 100 (epoch {ref.epoch.max()}), the criterion "
              f"({CRITERION}): {at_100.mean():.4f} ± {at_100.std():.4f} (n = {len(at_100)})")


if __name__ == "__main__":
    main()
