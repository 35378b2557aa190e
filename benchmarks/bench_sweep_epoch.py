"""What one epoch of a ``batch_sweep`` run costs, with the study's estimators and with the default
set, in CPU seconds of this process (so the figure holds on a loaded machine) and wall seconds;
used to choose the sweep's ``epochs`` (config.yaml). The run is built from config.yaml exactly as
the workflow's train job builds it, with ``epochs`` set to 1.

    python benchmarks/bench_sweep_epoch.py results/data/fashion-mnist mini-b8
    python benchmarks/bench_sweep_epoch.py results/data/fashion-mnist mini-b8 --compile

The folder holds the workflow's prepared ``tensors.pt`` and ``split.pt``
(``results/data/<dataset>/``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml

from dmbn.config import model_kwargs, study_train, train_config, validate
from dmbn.data import load_run_data
from dmbn.models import build_model
from dmbn.names import DEFAULT_ESTIMATORS, STATIC_BETAS
from dmbn.train import Run, train_run

ROOT = Path(__file__).resolve().parent.parent


def epoch_seconds(train: dict, regime: str, data) -> tuple[float, float]:
    """(CPU s, wall s) of one epoch of seed 1 with these training settings."""
    cfg = train_config({**train, "epochs": 1}, regime, 1, "cpu")
    torch.manual_seed(1)
    model = build_model("mlp", data.input_shape, data.num_classes, **model_kwargs(train))
    cpu, wall = time.process_time(), time.time()
    train_run(model, data, cfg, None, label=f"{regime} bench")
    return time.process_time() - cpu, time.time() - wall


def compare_compile(train: dict, regime: str, data) -> None:
    """CPU s of the second epoch of seed 1, eager and under ``torch.compile`` (the first compiles),
    with the study's estimators; the ratio compiled ÷ eager."""
    seconds = {}
    for compiled in (False, True):
        cfg = train_config({**train, "epochs": 2, "compile": compiled}, regime, 1, "cpu")
        torch.manual_seed(1)
        run = Run(build_model("mlp", data.input_shape, data.num_classes, **model_kwargs(train)), data, cfg)
        run.train_epoch()
        cpu = time.process_time()
        run.train_epoch()
        seconds[compiled] = time.process_time() - cpu
        print(f"{regime} · {'compiled' if compiled else 'eager'}: {seconds[compiled]:.1f} CPU s (second epoch)")
    print(f"ratio compiled / eager (CPU): {seconds[True] / seconds[False]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder with the prepared tensors.pt and split.pt")
    parser.add_argument("regime", help="a regime of the study, e.g. mini-b8")
    parser.add_argument("--study", default="batch_sweep")
    parser.add_argument("--compile", action="store_true",
                        help="the study's estimators eager against `compile: true` (after one epoch that compiles)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    validate(config, ROOT / "workflow" / "schemas" / "config.schema.yaml")
    data = load_run_data(args.data / "tensors.pt", args.data / "split.pt", args.regime)
    study = study_train(config, args.study, args.regime)
    if args.compile:
        compare_compile(study, args.regime, data)
        return
    default = {**study, "estimators": list(DEFAULT_ESTIMATORS), "betas": list(STATIC_BETAS)}
    results = {name: epoch_seconds(train, args.regime, data)
               for name, train in (("study's estimators", study), ("default estimators", default))}
    for name, (cpu, wall) in results.items():
        print(f"{args.regime} · {name}: {cpu:.1f} CPU s, {wall:.1f} wall s")
    ratio = results["study's estimators"][0] / results["default estimators"][0]
    print(f"ratio (CPU): {ratio:.2f}")


if __name__ == "__main__":
    main()
