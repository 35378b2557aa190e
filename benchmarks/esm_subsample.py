"""Does ``train.esm_samples`` change what a run measures? One finished run's static rows, ESM_μ
per BN layer on its ESM subsample (the samples its training measured on, ``dmbn.train.esm_subset``)
against the whole ESM set, and the β* each gives (DMBN's choice: per layer, the static β with the
smallest ESM_μ; at the last epoch's end the static rows are those in ``statistics.pt``).

    python benchmarks/esm_subsample.py <study folder> <study> <dataset> <regime> <arch> <seed>

e.g. ``/work/study-cnn cnn fashion-mnist mini-b16 resnet50-xbnblock-p2 1``: reads that folder's
``config.yaml``, ``results/data/<dataset>/{tensors,split}.pt`` and the run's ``model.pt`` and
``statistics.pt``; prints both ESM_μ per layer and row, their ratio, and both β* per layer next to
the run's own ``betas.csv`` (which must equal the subsample's).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from dmbn.config import arch_train, load_strict, model_kwargs, study_train, train_config
from dmbn.data import load_run_data
from dmbn.esm import measure_esm
from dmbn.files import load_weights
from dmbn.models import build_model
from dmbn.names import static_name
from dmbn.statistics import EstimatorStatistics
from dmbn.train import esm_subset


def esm_mu(model, statistics: EstimatorStatistics, rows: list[str], x, y, chunk: int) -> pd.DataFrame:
    """ESM_μ, rows x BN layers (1-based)."""
    measured = measure_esm(model, {name: statistics.of(name) for name in rows}, x, y, chunk)
    return pd.DataFrame(measured.esm_mu.numpy(), index=measured.names,
                        columns=range(1, measured.esm_mu.shape[1] + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("folder", "study", "dataset", "regime", "arch"):
        parser.add_argument(name)
    parser.add_argument("seed", type=int)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    folder = Path(args.folder)
    config = load_strict(folder / "config.yaml")
    train = arch_train(study_train(config, args.study, args.regime), args.arch)
    cfg = train_config(train, args.regime, args.seed, "cpu")
    data_dir = folder / "results" / "data" / args.dataset
    data = load_run_data(data_dir / "tensors.pt", data_dir / "split.pt", args.regime)
    run = folder / "results" / args.study / "runs" / args.dataset / args.regime / args.arch / f"seed{args.seed}" / "bank"
    model = build_model(args.arch, data.input_shape, data.num_classes, **model_kwargs(train))
    load_weights(model, run / "model.pt", "cpu")
    model.eval()
    statistics = EstimatorStatistics.load(run / "statistics.pt")
    rows = [static_name(b) for b in cfg.betas]
    x_sub, y_sub = esm_subset(data, cfg.esm_samples, cfg.seed)
    clock = time.perf_counter()
    sub = esm_mu(model, statistics, rows, x_sub, y_sub, cfg.esm_chunk)
    sub_seconds = time.perf_counter() - clock
    clock = time.perf_counter()
    full = esm_mu(model, statistics, rows, data.x_esm, data.y_esm, cfg.esm_chunk)
    full_seconds = time.perf_counter() - clock
    print(f"run {run}: ESM set {len(data.y_esm)} samples, subsample {len(y_sub)} "
          f"({sub_seconds:.0f} s and {full_seconds:.0f} s for the {len(rows)} static rows)\n")
    pd.set_option("display.width", 200)
    print("ESM_μ on the subsample / on the whole ESM set, per row (rows) and BN layer (columns):")
    print((sub / full).round(3).to_string(), "\n")
    betas = pd.Series(cfg.betas, index=rows)
    star = pd.DataFrame({"subsample": betas[sub.idxmin(axis=0)].to_numpy(),
                         "whole ESM set": betas[full.idxmin(axis=0)].to_numpy()}, index=sub.columns)
    logged = pd.read_csv(run / "betas.csv")
    last = logged[(logged.epoch == logged.epoch.max()) & (logged.get("estimator", "dmbn") == "dmbn")]
    star["run's betas.csv (last epoch)"] = last.set_index("layer").beta.reindex(star.index).to_numpy()
    print("β* per BN layer:")
    print(star.to_string(), "\n")
    same = int((star["subsample"] == star["whole ESM set"]).sum())
    ratio = (sub / full).to_numpy().ravel()
    print(f"β* the same in {same} of {len(star)} layers; the subsample's β* equals the run's logged one in "
          f"{int((star['subsample'] == star[star.columns[2]]).sum())} of {len(star)}; ESM_μ ratio "
          f"subsample / whole: median {pd.Series(ratio).median():.3f}, range {ratio.min():.3f}–{ratio.max():.3f}")


if __name__ == "__main__":
    main()
