"""The workflow's own ``.pt`` files read back: an unreadable or foreign file is named with the
job that rebuilds it; one holding pickled code is refused, not loaded. Torch alone: the library's
modules (``dmbn.statistics``) read their files through this module."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch


class ReadbackError(ValueError):
    """A file written by an earlier job is unreadable or breaks its schema; the message names
    the file, the line, the column and the value, and how to rebuild the file."""


class RefusedFileError(ReadbackError, pickle.UnpicklingError):
    """A ``.pt`` file holding objects other than tensors and plain data: not loaded."""


def rebuild(path: Path, rule: str) -> str:
    """What to do about a bad file: delete it and let Snakemake run the job that writes it."""
    again = {"train": " (it resumes from the run's checkpoint if there is one, so a finished run "
                      "is not trained again)"}.get(rule, "")
    return (f"It is written by the `{rule}` job: delete it (rm {path}) and run the same snakemake "
            f"command again, which runs `{rule}` again{again}.")


# file name -> the job that writes it, and the keys it holds
PT_FILES = {"tensors.pt": ("prepare", ("x_train", "y_train", "x_test", "y_test", "num_classes")),
            "split.pt": ("split", ("train", "validation")),
            "statistics.pt": ("train", ("names", "mean", "var", "layer_names", "layer_sizes")),
            "model.pt": ("train", ())}


def load_pt(path: str | Path, map_location: str | torch.device | None = None) -> Any:
    """``torch.load(path, weights_only=True)`` of a file the workflow wrote, with its keys
    checked; an unreadable file is named with the job that rebuilds it, and one holding pickled
    code is refused (it is not loaded)."""
    path = Path(path)
    rule, keys = PT_FILES.get(path.name, ("", ()))
    fix = rebuild(path, rule) if rule else f"Delete it (rm {path}) and write it again."
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:
        if "Weights only load failed" in str(error):
            found = [line.strip() for line in str(error).splitlines() if "GLOBAL" in line or "global" in line]
            raise RefusedFileError(f"{path} holds objects other than tensors and plain data (Weights only "
                                   f"load failed: {' '.join(found[:1])}; written by other code, or tampered "
                                   f"with), so it was not loaded. If you trust it, inspect it with "
                                   f"torch.load(..., weights_only=False); otherwise: {fix}") from None
        raise ReadbackError(f"{path} cannot be read ({_first_line(error)}): it is truncated or "
                            f"corrupt. {fix}") from None
    except Exception as error:  # truncated or garbled: torch raises assorted types
        raise ReadbackError(f"{path} cannot be read ({error.__class__.__name__}: {_first_line(error)}): "
                            f"it is truncated or corrupt. {fix}") from None
    missing = [k for k in keys if not isinstance(state, dict) or k not in state]
    if missing:
        raise ReadbackError(f"{path} lacks {', '.join(missing)}: it was not written by this "
                            f"workflow's `{rule}` job. {fix}")
    return state


def load_weights(model: torch.nn.Module, path: str | Path, map_location: str | torch.device | None = None) -> None:
    """Load a run's ``model.pt`` into ``model``; weights of another model are named as such."""
    state = load_pt(path, map_location)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise ReadbackError(f"{path} holds weights of another model than this run's "
                            f"({_first_line(error)}). {rebuild(Path(path), 'train')}") from None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]
