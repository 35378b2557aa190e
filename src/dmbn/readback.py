"""What a job reads back from earlier jobs is checked before it is used.

A per-run or study file that was truncated, edited by hand or written by a broken job must stop
the job that reads it, naming the file, the line, the column and the bad value, and saying how
to rebuild it; it must never flow on into a table as a string or a NaN.

* CSV files: one pandera schema per file kind (columns, dtypes, ranges, finite values, unique
  keys), then the rows the run should carry (``expect_rows``: every estimator, epochs 1..E).
  pandera reports each failing cell with its row index; ``_describe`` turns that into a line of
  the file. The row checks across a file (a missing estimator or epoch) are plain pandas: they
  compare against what the configuration says a run holds, which a schema cannot know.
* ``.pt`` files: ``dmbn.files.load_pt`` (re-exported here), kept apart so that the library's
  own modules (``dmbn.statistics``) need torch alone, not pandas and pandera.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from .files import (ReadbackError, RefusedFileError, _first_line, load_pt, load_weights,  # noqa: F401
                    rebuild)  # re-exported: the workflow reads every file kind through this module
from .names import ESTIMATORS, METRICS, REGIME_PATTERN, estimator_kind, estimator_name_pattern

SHOWN = 5  # failures listed in one error; the rest are counted


# -- checks ---------------------------------------------------------------------------------------

FINITE = pa.Check(lambda s: np.isfinite(s), element_wise=False, ignore_na=True, error="is not finite")
UNIT = pa.Check.in_range(0, 1, error="lies outside [0, 1]")
NON_NEGATIVE = pa.Check.ge(0, error="is negative")
BETA = pa.Check.in_range(0, 1, include_min=False, error="lies outside (0, 1]")
POSITIVE = pa.Check.ge(1, error="is below 1")
# The registry is read when a file is checked, not when this module loads: a kind registered
# later (a user's, dmbn.names.register_estimator) is a name too.
ESTIMATOR = pa.Check(lambda s: s.str.fullmatch(estimator_name_pattern()).fillna(False).astype(bool),
                     error="is no estimator name")
CHOOSING = pa.Check(lambda s: s.isin([k for k, v in ESTIMATORS.items() if v.stage == "chosen"]),
                    error="is no kind that chooses β*")


def _float(*checks: pa.Check, nullable: bool = False, regex: bool = False) -> pa.Column:
    """A float column: coerced, so that a cell that is no number is named with its row."""
    return pa.Column(float, [*checks, FINITE], nullable=nullable, coerce=True, regex=regex)


def _int(*checks: pa.Check) -> pa.Column:
    # not coerced: coercing 2.5 to an int would pass it as 2; a wrong dtype is located by _describe
    return pa.Column(int, list(checks))


def _str(*checks: pa.Check) -> pa.Column:
    return pa.Column(str, list(checks))


_METRIC_COLUMNS = {metric: _float(UNIT) for metric in METRICS}
_RUN_LABELS = {"dataset": _str(), "regime": _str(pa.Check.str_matches(f"^({REGIME_PATTERN})$",
                                                                      error="is no regime name")),
               "arch": _str(), "seed": _int(pa.Check.ge(0, error="is negative"))}
_SUMMARY_LABELS = {**_RUN_LABELS, "member": _str()}

# PreciseBN's batch means per BN layer: their variance against pooled variance / B (ratio)
_SPREAD_COLUMNS = {"layer": _int(POSITIVE), "batch_size": _float(pa.Check.gt(0, error="is not positive")),
                   # one batch (full batch) has no variance of batch means: empty there
                   "batches": _int(POSITIVE), "var_of_batch_means": _float(NON_NEGATIVE, nullable=True),
                   "pooled_var": _float(NON_NEGATIVE), "ratio": _float(NON_NEGATIVE, nullable=True)}

# file kind -> (schema, the columns that name a row in an error, the job that writes the file)
RUN_FILES: dict[str, tuple[pa.DataFrameSchema, tuple[str, ...], str]] = {
    "metrics.csv": (pa.DataFrameSchema({"estimator": _str(ESTIMATOR), **_METRIC_COLUMNS},
                                       unique=["estimator"]), ("estimator",), "evaluate"),
    "history.csv": (pa.DataFrameSchema({"epoch": _int(POSITIVE), "train_loss": _float(NON_NEGATIVE),
                                        "train_accuracy": _float(UNIT),
                                        r"^esm_accuracy_.+$": _float(UNIT, nullable=True, regex=True)},
                                       unique=["epoch"]), ("epoch",), "train"),
    "esm.csv": (pa.DataFrameSchema({"epoch": _int(POSITIVE), "layer": _int(POSITIVE),
                                    "estimator": _str(ESTIMATOR), "esm_mu": _float(NON_NEGATIVE),
                                    "esm_sigma": _float(NON_NEGATIVE)},
                                   unique=["epoch", "layer", "estimator"]),
                ("epoch", "layer", "estimator"), "train"),
    # files written before betas.csv named its choosing kind hold DMBN's alone (runs.with_choosing_kind)
    "betas.csv": (pa.DataFrameSchema({"epoch": _int(POSITIVE), "layer": _int(POSITIVE),
                                      "estimator": pa.Column(str, CHOOSING, required=False),
                                      "beta": _float(BETA)}),
                  ("epoch", "layer", "estimator"), "train"),
    # written only by runs with PreciseBN, and not a declared output (dmbn.train's docstring)
    "precise_spread.csv": (pa.DataFrameSchema(_SPREAD_COLUMNS, unique=["layer"]), ("layer",), "train"),
    "layers.csv": (pa.DataFrameSchema({"layer": _int(POSITIVE), "name": _str(),
                                       "channels": _int(POSITIVE), "position": _int(POSITIVE)},
                                      unique=["layer"]), ("layer",), "train"),
}

STUDY_FILES: dict[str, tuple[pa.DataFrameSchema, tuple[str, ...], str]] = {
    "metrics.csv": (pa.DataFrameSchema({**_RUN_LABELS, "estimator": _str(ESTIMATOR), **_METRIC_COLUMNS},
                                       unique=[*_RUN_LABELS, "estimator"]),
                    (*_RUN_LABELS, "estimator"), "aggregate"),
    "beta_star.csv": (pa.DataFrameSchema({**_SUMMARY_LABELS, "estimator": pa.Column(str, CHOOSING, required=False),
                                          "layer": _int(POSITIVE),
                                          r"^e\d+$": _float(BETA, nullable=True, regex=True)}),
                      (*_SUMMARY_LABELS, "layer"), "summarise"),
    "esm_last_epoch.csv": (pa.DataFrameSchema({**_SUMMARY_LABELS, "epoch": _int(POSITIVE),
                                               "estimator": _str(ESTIMATOR),
                                               r"^l\d+$": _float(NON_NEGATIVE, nullable=True, regex=True)}),
                           (*_SUMMARY_LABELS, "estimator"), "summarise"),
    "training_last_epoch.csv": (pa.DataFrameSchema({**_SUMMARY_LABELS, "epoch": _int(POSITIVE),
                                                    "train_loss": _float(NON_NEGATIVE),
                                                    "train_accuracy": _float(UNIT)}),
                                tuple(_SUMMARY_LABELS), "summarise"),
    "training_curves.csv": (pa.DataFrameSchema({**_SUMMARY_LABELS, "epoch": _int(POSITIVE),
                                                "train_loss": _float(NON_NEGATIVE), "train_accuracy": _float(UNIT),
                                                r"^esm_accuracy_.+$": _float(UNIT, nullable=True, regex=True)},
                                               unique=[*_SUMMARY_LABELS, "epoch"]),
                            (*_SUMMARY_LABELS, "epoch"), "summarise"),
    "precise_spread.csv": (pa.DataFrameSchema({**_SUMMARY_LABELS, **_SPREAD_COLUMNS},
                                              unique=[*_SUMMARY_LABELS, "layer"]),
                           (*_SUMMARY_LABELS, "layer"), "summarise"),
    "separate.csv": (pa.DataFrameSchema({**_RUN_LABELS, "beta": _float(BETA), "separate": _float(UNIT),
                                         "bank": _float(UNIT)}, unique=[*_RUN_LABELS, "beta"]),
                     (*_RUN_LABELS, "beta"), "separate_protocol"),
    # the shift study's: every row's accuracy on every shifted set, and ESM_μ per BN layer there
    "scores.csv": (pa.DataFrameSchema({**_RUN_LABELS, "corruption": _str(), "severity": _int(POSITIVE),
                                       "stream": _str(), "family": _str(), "row": _str(),
                                       "accuracy": _float(UNIT)},
                                      unique=[*_RUN_LABELS, "corruption", "severity", "stream", "row"]),
                   (*_RUN_LABELS, "corruption", "severity", "stream", "row"), "shift_aggregate"),
    "esm_mu_by_layer.csv": (pa.DataFrameSchema({**_RUN_LABELS, "corruption": _str(), "severity": _int(POSITIVE),
                                                "estimator": _str(ESTIMATOR),
                                                r"^l\d+$": _float(NON_NEGATIVE, nullable=True, regex=True)}),
                            (*_RUN_LABELS, "corruption", "severity", "estimator"), "shift_aggregate"),
}

# what names one run in every study file: a run that two parts of a study both hold would count twice
RUN_KEYS = tuple(_RUN_LABELS)


# -- reading CSV files ------------------------------------------------------------------------------

def read_run_file(path: str | Path, expect: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One per-run CSV (its kind from its name: ``metrics.csv``, ``history.csv``…), checked
    against its schema and, given ``expect`` (``run_expectation``), for the rows the run holds."""
    frame = _read_checked(path, RUN_FILES, "per-run")
    if expect:
        expect_rows(frame, Path(path), expect)
    return frame


def read_study_file(path: str | Path) -> pd.DataFrame:
    """One study-level CSV (``metrics.csv`` or a summary), checked against its schema."""
    return _read_checked(path, STUDY_FILES, "study")


def read_parts(parts: Iterable[str | Path], name: str, every: bool = False) -> pd.DataFrame | None:
    """One study file (``name``, relative to a study's folder) of a study published in parts, a
    batch size or a seed each because the whole would not fit one session, read as one table: each
    part checked against the file's schema (``read_study_file``), a ``study`` column naming the part
    each row comes from. A part without the file is skipped, or refused with ``every``; None where
    no part has it. A run that two parts both hold would count twice, so it is refused, naming the
    file, the run and the parts."""
    present = {}
    for part in map(Path, parts):
        if (part / name).exists():
            present[part.name] = read_study_file(part / name)
        elif every:
            raise ReadbackError(f"{part / name}: no such file; every part of the study must have {name}")
    if not present:
        return None
    together = pd.concat([frame.assign(study=study) for study, frame in present.items()], ignore_index=True)
    holders = together.groupby(list(RUN_KEYS)).study.unique()  # every study file's schema requires them
    twice = holders[holders.map(len) > 1]
    if len(twice):
        dataset, regime, arch, seed = twice.index[0]
        raise ReadbackError(f"{name}: the run {dataset} {regime} {arch} seed {seed} is in more than one part "
                            f"({', '.join(sorted(twice.iloc[0]))}); give each run once")
    return together


def _read_checked(path: str | Path, kinds: Mapping, what: str) -> pd.DataFrame:
    path = Path(path)
    if path.name not in kinds:
        raise ValueError(f"{path}: no {what} file kind of this name (known: {', '.join(kinds)})")
    schema, keys, rule = kinds[path.name]
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ReadbackError(f"{path} is not a readable CSV file ({_first_line(error)}). "
                            f"{rebuild(path, rule)}") from None
    if frame.empty:
        schema = _for_header_only(schema)
    try:
        return schema.validate(frame, lazy=True)
    except SchemaErrors as errors:
        raise ReadbackError(f"{path} breaks its schema:\n"
                            + _describe(errors.failure_cases, frame, keys)
                            + f"\n{rebuild(path, rule)}") from None


def _for_header_only(schema: pa.DataFrameSchema) -> pa.DataFrameSchema:
    """``schema`` for a file with a header and no rows: it takes the schema's dtypes (there are no
    values to infer one from), and its columns named by pattern (``e1``… per epoch, ``l1``… per
    layer) may be absent, as there is nothing to name them after: a study without DMBN has no
    β* and writes ``beta_star.csv`` with the run keys only."""
    header_only = copy.deepcopy(schema)
    header_only.coerce = True
    for column in header_only.columns.values():
        if column.regex:
            column.required = False
    return header_only


def _describe(failures: pd.DataFrame, frame: pd.DataFrame, keys: Iterable[str]) -> str:
    """One line per failing cell: its line in the file, its row's key, the column, the value."""
    lines = []
    for failure in failures.itertuples():
        if failure.check == "column_in_dataframe":
            lines.append(f"  line 1 (the header): no column {failure.failure_case!r}; "
                         f"the file has {', '.join(map(str, frame.columns))}")
        elif failure.check == "multiple_regex_columns_found" or str(failure.check).startswith("column_in"):
            lines.append(f"  line 1 (the header): {failure.check} {failure.failure_case!r}")
        elif failure.index is not None and not pd.isna(failure.index):
            if str(failure.check).startswith("dtype("):
                continue  # the same cell is reported by its coercion
            lines.append(_cell(frame, int(failure.index), failure.column, keys,
                               _reason(failure.check, failure.failure_case)))
        elif str(failure.check).startswith("dtype("):
            lines.append(_bad_dtype(frame, failure.column, str(failure.check), keys))
    lines = list(dict.fromkeys(lines))  # a cell may fail several checks with one text
    shown = lines[:SHOWN] + ([f"  … and {len(lines) - SHOWN} more"] if len(lines) > SHOWN else [])
    return "\n".join(shown)


def _reason(check: str, value: Any) -> str:
    if check.startswith("coerce_dtype"):
        return f"{_show(value)} is not a number"
    if check == "not_nullable":
        return "is empty (NaN)"
    if check == "field_uniqueness" or check.startswith("unique"):
        return f"{_show(value)} repeats an earlier row"
    return f"{_show(value)} {check}"


def _show(value: Any) -> str:
    """A cell as the file has it: text quoted, 2.0 read into a float column as 2."""
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, str) else str(value)


def _cell(frame: pd.DataFrame, index: int, column: str | None, keys: Iterable[str], reason: str) -> str:
    """``line L (estimator 'dmbn'), column accuracy: reason``: line 1 is the header."""
    row = frame.loc[index] if index in frame.index else None
    named = [f"{k} {_show(row[k])}" for k in keys if row is not None and k in frame.columns and k != column]
    where = f"line {index + 2}" + (f" ({', '.join(named)})" if named else "")
    return f"  {where}, column {column}: {reason}"


def _bad_dtype(frame: pd.DataFrame, column: str, check: str, keys: Iterable[str]) -> str:
    """pandera names no row for a column of the wrong dtype: find the first cell to blame."""
    values = frame[column]
    numbers = pd.to_numeric(values, errors="coerce")
    if "int" in check:
        bad = values.isna() | numbers.isna() | (numbers != np.floor(numbers))
        what = "is not a whole number"
    else:
        bad = values.notna()  # a string column holding numbers only
        what = "is not text"
    if not bad.any():
        return f"  column {column}: expected {check}, found {values.dtype}"
    index = int(bad.idxmax())
    return _cell(frame, index, column, keys, f"{_show(values[index])} {what}")


# -- the rows a run should carry ----------------------------------------------------------------------

def expect_rows(frame: pd.DataFrame, path: Path, expect: Mapping[str, Any]) -> None:
    """``frame`` (one checked per-run file) holds the rows its run should: for ``metrics.csv``
    every estimator; for ``history.csv`` and ``esm.csv`` epochs 1..E and every estimator with
    statistics at the last epoch; for ``betas.csv`` every epoch of every kind choosing β*."""
    epochs, estimators = expect.get("epochs"), list(expect.get("estimators", []))
    with_statistics = [e for e in estimators if ESTIMATORS[estimator_kind(e)].stage != "none"]
    rule = RUN_FILES[path.name][2]
    problems: list[str] = []
    if path.name == "metrics.csv":
        problems += _missing(frame, "estimator", estimators)
    elif path.name == "history.csv":
        problems += _epochs(frame, epochs)
        problems += [f"  line 1 (the header): no column {c!r}" for c in
                     (f"esm_accuracy_{e}" for e in with_statistics) if c not in frame.columns]
        if not problems and len(frame):
            last = frame.index[frame.epoch == frame.epoch.max()][0]
            problems += [_cell(frame, last, f"esm_accuracy_{e}", ("epoch",), "is empty (NaN) at the last epoch")
                         for e in with_statistics if pd.isna(frame.at[last, f"esm_accuracy_{e}"])]
    elif path.name == "esm.csv":
        problems += _epochs(frame, epochs)
        if not problems and len(frame):
            last = frame[frame.epoch == frame.epoch.max()]
            problems += [f"  epoch {frame.epoch.max()}, column estimator: no row for {e!r}"
                         for e in with_statistics if e not in set(last.estimator)]
    elif path.name == "betas.csv":
        choosing = [e for e in with_statistics if ESTIMATORS[estimator_kind(e)].stage == "chosen"]
        kinds = frame.estimator if "estimator" in frame.columns else pd.Series("dmbn", index=frame.index)
        for kind in choosing:
            problems += _epochs(frame[kinds == kind], epochs, f" of estimator {kind!r}")
    if problems:
        shown = problems[:SHOWN] + ([f"  … and {len(problems) - SHOWN} more"] if len(problems) > SHOWN else [])
        raise ReadbackError(f"{path} lacks rows its run should hold:\n" + "\n".join(shown)
                            + f"\n{rebuild(path, rule)}")


def _missing(frame: pd.DataFrame, column: str, expected: Iterable[str]) -> list[str]:
    present = set(frame[column])
    return [f"  no row with {column} {e!r} (column {column}; the run's estimators: {', '.join(expected)})"
            for e in expected if e not in present]


def _epochs(frame: pd.DataFrame, epochs: int | None, whose: str = "") -> list[str]:
    """Epochs 1..E (E: ``epochs``, else the file's last) each present."""
    last = epochs if epochs is not None else int(frame.epoch.max()) if len(frame) else 0
    present = set(frame.epoch.astype(int)) if len(frame) else set()
    missing = [e for e in range(1, last + 1) if e not in present]
    extra = sorted(e for e in present if e > last)
    return ([f"  no row with epoch {e}{whose} (column epoch; the run has epochs 1..{last})" for e in missing]
            + [f"  rows with epoch {e}{whose} (column epoch) beyond the run's {last} epochs" for e in extra])


# -- .pt files ------------------------------------------------------------------------------------------


# -- run cards --------------------------------------------------------------------------------------

_TEXT, _COUNT = {"type": "string", "minLength": 1}, {"type": "integer", "minimum": 0}
_SECONDS = {"type": "number", "minimum": 0}  # JSON has no NaN or infinity: json.loads reads them
                                            # as floats, which `_finite` refuses below
_TIMES = {"started": _TEXT, "finished": _TEXT, "wall_seconds": _SECONDS}
CARD_SCHEMA = {
    "type": "object",
    "required": ["dmbn_version", "commit", "commit_dirty", "python", "torch", "torchvision", "snakemake",
                 "device", "threads", "hostname", "started", "finished", "wall_seconds", "epochs_run",
                 "resumed_from_epoch", "segments"],
    "properties": {
        "dmbn_version": _TEXT, "commit": _TEXT, "commit_dirty": {"type": ["boolean", "null"]},
        "python": _TEXT, "torch": _TEXT, "torchvision": {"type": ["string", "null"]},
        "snakemake": {"type": ["string", "null"]}, "device": _TEXT,
        "threads": {"type": "integer", "minimum": 1}, "hostname": _TEXT, **_TIMES,
        # optional: cards written before dmbn recorded them lack these
        "cpu": _TEXT, "numpy": _TEXT, "scikit-learn": _TEXT,
        "epochs_run": _COUNT, "resumed_from_epoch": _COUNT,
        "segments": {"type": "array", "minItems": 1, "items": {
            # a segment's times are optional: checkpoints of older dmbn versions carry segments without them
            "type": "object", "required": ["commit", "first_epoch", "last_epoch"],
            "properties": {"commit": _TEXT, "first_epoch": _COUNT, "last_epoch": _COUNT, **_TIMES}}},
    },
}


def read_card(path: str | Path) -> dict[str, Any]:
    """A run's ``card.json``, checked against ``CARD_SCHEMA`` (the project's jsonschema): an
    error names the file, the field and the value, and how to rebuild the card."""
    import json

    import jsonschema

    path = Path(path)
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ReadbackError(f"{path} is not a run card (not JSON: {_first_line(error)}). "
                            f"{rebuild(path, 'train')}") from None
    problems = sorted(jsonschema.Draft202012Validator(CARD_SCHEMA).iter_errors(card), key=lambda e: list(e.path))
    problems += [_NonFinite(path_) for path_ in _non_finite(card)]
    if problems:
        shown = "; ".join(f"field {'.'.join(map(str, p.path)) or '(card)'}: {p.message}" for p in problems[:SHOWN])
        raise ReadbackError(f"{path} breaks the run card's schema: {shown}. {rebuild(path, 'train')}")
    return card


class _NonFinite:
    def __init__(self, path: list) -> None:
        self.path, self.message = path, "is not a finite number"


def _non_finite(node: Any, path: tuple = ()) -> list[list]:
    if isinstance(node, float):
        return [] if np.isfinite(node) else [list(path)]
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    return [bad for key, child in children for bad in _non_finite(child, (*path, key))]
