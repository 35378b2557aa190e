"""The study configuration: validation against the JSON schema, checks the schema cannot
express, and settings per run.

The workflow calls ``validate`` (the schema) and then ``check``; both run before any job. Every
error's first line names the offending key and value (``train.batch_size: 1 is less than ...``).
Integers must be written as integers: ``50.0`` is rejected where the schema says ``integer``
(JSON Schema itself accepts it, and ``seeds: [1.0]`` would name a folder ``seed1.0``).
"""

from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import yaml

from .names import (ARCHITECTURES, BATCH_NORM_ARCHS, DEFAULT_ESTIMATOR, ESTIMATORS, FULL_BATCH_REGIMES,
                    PROTOCOLS, REGIME_PATTERN, SEED_STRIDE, SHIFT_RULES,
                    axis_regime,
                    batchnorm_count, xbn_group_count,
                    estimator_kind, estimator_name_pattern, family_batch_size, primary_arch,
                    run_estimators,
                    static_name)

if TYPE_CHECKING:  # the workflow imports this module: keep torch out of it
    from .train import TrainConfig

MODEL_KEYS = ("depth", "width", "batch_free", "groups", "resnet_blocks", "resnet_channels", "xbn_groups")
# (training, test) set sizes of torchvision's data sets, before the validation split.
TORCHVISION_SIZES = {"MNIST": (60000, 10000), "FashionMNIST": (60000, 10000), "CIFAR10": (50000, 10000),
                     "CIFAR100": (50000, 10000)}
DIGITS_SIZE = 1797  # scikit-learn's digits, split into training and test by its test_fraction
# Classes per data set: a stratified split needs at least one sample of each in every part.
TORCHVISION_CLASSES = {"MNIST": 10, "FashionMNIST": 10, "CIFAR10": 10, "CIFAR100": 100}
DIGITS_CLASSES = 10


# The report's settings where a configuration leaves them out: the one place that holds them.
REPORT_DEFAULTS = {
    "decimals": 3,
    "beta_layer": 18,          # Fig 5.1: β* per epoch of this BN layer
    "esm_layers": [2, 19],     # Figs 5.2 and 5.3
    "esm_estimator": "dmbn",   # ESM per layer and epoch
    "confidence": 0.95,        # paired comparisons, batch-size intervals
    "figure_dpi": 150,
}

# Distribution shift (studies with `shift: true`), where the config's `shift` block leaves a key
# out: every corruption of dmbn.corruptions at every severity, every test order and rule; NOTE's
# Dirichlet α; N = 16 source samples' worth of prior for the mix (Schneider et al.'s setting for
# small test batches); one seed for the corrupted sets and the streams.
SHIFT_STREAMS = ("iid", "class-sorted", "dirichlet")  # dmbn.streams.STREAMS (a test checks they agree)
SHIFT_DATASETS = ("MNIST", "FashionMNIST")  # 28x28 grayscale: what dmbn.corruptions is written for


def shift_defaults() -> dict[str, Any]:
    from .corruptions import CORRUPTIONS, SEVERITIES  # numpy and scipy; torch only inside functions

    return {"corruptions": list(CORRUPTIONS), "severities": list(SEVERITIES), "streams": list(SHIFT_STREAMS),
            "alpha": 0.1, "prior": 16, "rules": list(SHIFT_RULES), "seed": 0, "test_samples": None}


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key and the value."""


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: its keys may be overridden below (SafeLoader merges them)
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"duplicate key {key!r} at line {key_node.start_mark.line + 1}")
            seen.add(key)
        return super().construct_mapping(node, deep)


def export_source(src: str | Path) -> None:
    """Put ``src`` first on PYTHONPATH, so that the workflow's job scripts (own processes, here or
    on a cluster node) import the same ``dmbn`` as the workflow, installed or not."""
    paths = [str(src)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(src)]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)


def load_strict(path: str | Path) -> dict:
    """Read a YAML config, refusing duplicate keys (two studies of the same name, say)."""
    try:
        with open(path) as handle:
            return yaml.load(handle, Loader=_UniqueKeyLoader) or {}
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


# A value the schema rejects as a string where it expects something else: nested `--config`
# values (`--config 'train={batch_size: 50}'`) arrive as strings, whatever they look like.
NESTED_CONFIG_ADVICE = ("Values given with --config arrive as strings; where a number or a boolean is "
                        "expected they are read as YAML, but this one is not one. Nested settings are "
                        "safest in a YAML file (e.g. `train: {batch_size: 50}`) passed with "
                        "--configfile FILE, which is merged over config.yaml.")


# Keys whose meaning changed: a configuration that still has one is refused before the schema
# (whose "additional property" error would not say what became of it). Key -> (its successor, why).
RETIRED_TRAIN_KEYS = {
    "resnet_width": ("resnet_channels", "it was torchvision's width_per_group, which scales only the "
                     "bottlenecks' inner width; resnet_channels scales every channel count (64: ResNet-50)"),
}


def refuse_retired_keys(node: Any, path: tuple = ()) -> None:
    """A retired key anywhere under a ``train`` block is an error naming it and its successor."""
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if path and path[-1] == "train" and key in RETIRED_TRAIN_KEYS:
            successor, why = RETIRED_TRAIN_KEYS[key]
            where = ".".join(str(p) for p in path)
            raise ConfigError(f"{where}.{key}: this key is retired: {why}. Use {where}.{successor} "
                              f"(mind the new meaning: {key}: {value!r} is not {successor}: {value!r})")
        refuse_retired_keys(value, (*path, key))


def validate(config: dict, schema: str | Path) -> None:
    """Check ``config`` against the JSON schema and fill in its defaults; raises ``ConfigError``
    whose first line names key and value of the most relevant problem, one line for each other."""
    import jsonschema  # the workflow's process needs it, training jobs do not

    refuse_retired_keys(config)

    with open(schema) as handle:
        validator = _validator_class()(with_registries(yaml.safe_load(handle)))
    errors = list(validator.iter_errors(config))
    while errors and any(_read_string_as_yaml(config, e) for e in errors):
        errors = list(validator.iter_errors(config))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        lines = [_describe(best)] + [_describe(e) for e in errors if e is not best]
        if any(e.validator == "type" and isinstance(e.instance, str) for e in errors):
            lines.append(NESTED_CONFIG_ADVICE)
        raise ConfigError("\n".join(lines))


PART_NAME = re.compile(r"(?P<study>.+)_s(?P<seed>\d+)")  # a part of a study in parts: <study>_s<seed>


def part_name(study: str, seed: int) -> str:
    """The name of ``study``'s part holding ``seed`` alone (``PART_NAME`` reads it back)."""
    return f"{study}_s{seed}"


def expand_parts(config: dict) -> dict[str, list[str]]:
    """Replace each study with ``parts: seed`` by one study per seed, ``<name>_s<seed>``, in its
    place: the study with that seed alone. A study too long for one session is run and published
    a part at a time, each with its own results folder, run cards and report; the pages read the
    parts as one (``dmbn.readback.read_parts``). A run's identity is unchanged, since its folder
    holds the part's name. Returns each expanded study's parts (the workflow makes the study's
    name a target of them all). A part's name that is already a study's is refused, naming both."""
    studies, parts = {}, {}
    for name, spec in config["studies"].items():
        if spec.get("parts") != "seed":
            studies[name] = spec
            continue
        parts[name] = [part_name(name, seed) for seed in spec["seeds"]]
        for seed, part in zip(spec["seeds"], parts[name]):
            if part in config["studies"]:
                raise ConfigError(f"studies.{name}.parts: its part for seed {seed}, {part}, is also a study "
                                  f"of its own; rename one of them")
            studies[part] = {**copy.deepcopy({k: v for k, v in spec.items() if k != "parts"}), "seeds": [seed]}
    config["studies"] = studies
    if config.get("default_study") in parts:
        name = config["default_study"]
        raise ConfigError(f"default_study: {name!r} is published in parts ({', '.join(parts[name])}); name one "
                          f"of its parts, or another study")
    return parts


def with_registries(schema: dict) -> dict:
    """``schema`` with the names it takes from ``dmbn.names`` filled in: the regimes
    (``$defs.regime``), the architectures (``$defs.arch``), the estimator kinds ``train.estimators`` may list and the row names that
    have an ESM (``report.esm_estimator``), from ``ESTIMATORS``."""
    definitions = schema.setdefault("$defs", {})
    definitions["regime"] = {"type": "string", "pattern": f"^({REGIME_PATTERN})$"}
    definitions["estimator_kind"] = {"enum": list(ESTIMATORS)}
    definitions["arch"] = {"enum": list(ARCHITECTURES)}
    definitions["protocol"] = {"enum": list(PROTOCOLS)}
    definitions["estimator_name"] = {"type": "string",
                                     "pattern": estimator_name_pattern(("epoch", "chosen", "final"))}
    from .corruptions import CORRUPTIONS, SEVERITIES

    definitions["corruption"] = {"enum": list(CORRUPTIONS)}
    definitions["severity"] = {"type": "integer", "enum": list(SEVERITIES)}
    definitions["shift_stream"] = {"enum": list(SHIFT_STREAMS)}
    definitions["shift_rule"] = {"enum": list(SHIFT_RULES)}
    return schema


def _read_string_as_yaml(config: dict, error) -> bool:
    """``--config`` hands values over as strings (``download=false``; every leaf of a nested
    ``train={epochs: 2}``). Where the schema wants a boolean or a number, read such a string as
    YAML and keep the value if it has a type the schema accepts; True if ``config`` changed."""
    if error.validator != "type" or not isinstance(error.instance, str) or not error.absolute_path:
        return False
    try:
        value = yaml.safe_load(error.instance)
    except yaml.YAMLError:
        return False
    wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    scalar = isinstance(value, (bool, int, float)) and set(wanted) <= {"boolean", "integer", "number"}
    if not scalar or not any(error._type_checker.is_type(value, t) for t in wanted):
        return False
    *parents, key = error.absolute_path
    container = config
    for part in parents:
        container = container[part]
    container[key] = value
    return True


def _validator_class() -> type:
    """Draft 2020-12 where ``integer`` excludes floats (``50.0``), filling in ``default`` values
    (the jsonschema FAQ recipe, as Snakemake's ``validate`` does)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    strict = base.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    check_properties = base.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in props.items():
                if "default" in subschema:
                    instance.setdefault(key, subschema["default"])
        yield from check_properties(validator, props, instance, schema)

    return jsonschema.validators.extend(base, {"properties": properties}, type_checker=strict)


def _describe(error) -> str:
    """``key.path: value and what is wrong with it`` for one ``jsonschema.ValidationError``."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        return "; ".join(f"{_dotted(path + [key])}: unknown key (value {error.instance[key]!r}); "
                         f"known keys here: {', '.join(known)}" for key in unknown)
    message = error.message
    wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    if error.validator == "type" and "integer" in wanted and isinstance(error.instance, float):
        message += " (write integers without a decimal point)"
    return f"{_dotted(path) or 'config'}: {message}"


def _dotted(path: list) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path).lstrip(".")


def study_regimes(config: dict, study: str) -> list[str]:
    """A study's regimes: its ``regimes``, or the regimes of its ``batch_sizes`` (``8`` ->
    ``mini-b8``, ``full`` -> ``full-heldout``); where both are given they must agree."""
    spec = config["studies"][study]
    key = f"studies.{study}"
    if "batch_sizes" not in spec:
        if "regimes" not in spec:
            raise ConfigError(f"{key}: no `regimes` and no `batch_sizes`; give one of them")
        return list(spec["regimes"])
    axis = [axis_regime(point) for point in spec["batch_sizes"]]
    if "regimes" in spec and sorted(spec["regimes"]) != sorted(axis):
        raise ConfigError(f"{key}.regimes: {spec['regimes']} does not match {key}.batch_sizes: "
                          f"{spec['batch_sizes']}, whose regimes are {axis}; give only one of them")
    return axis


def study_train(config: dict, study: str, regime: str | None = None) -> dict[str, Any]:
    """The training settings of a study's runs in ``regime``: the global ``train`` block, updated
    by the study's own, updated by the study's ``regime_overrides.<regime>.train``; a
    ``mini-b<B>`` regime's batch size is B."""
    spec = config["studies"][study]
    override = spec.get("regime_overrides", {}).get(regime, {}) if regime else {}
    train = {**config["train"], **spec.get("train", {}), **override.get("train", {})}
    if regime and family_batch_size(regime) is not None:
        train["batch_size"] = family_batch_size(regime)
    return train


def regime_batch_size(config: dict, study: str, dataset: str, regime: str) -> int | None:
    """The batch size of a study's runs in ``regime`` on ``dataset``, the x of the batch-size
    axis: full batch is the number of training samples (None for a custom data set, whose size
    the configuration does not say)."""
    if regime not in FULL_BATCH_REGIMES:
        return study_train(config, study, regime)["batch_size"]
    sizes = dataset_sizes(config, dataset)
    if sizes is None:
        return None
    return sizes[1] if regime == "full" else sizes[0]  # the thesis's full trains on the test set


def study_batch_sizes(config: dict, study: str, dataset: str) -> dict[str, int | None]:
    """Regime -> batch size (``regime_batch_size``) of every regime of a study on ``dataset``:
    the x values of its batch-size table and figures."""
    return {r: regime_batch_size(config, study, dataset, r) for r in study_regimes(config, study)}


def dataset_sizes(config: dict, dataset: str) -> tuple[int, int] | None:
    """(training samples of the 80 % split, official test samples) of a data set; None for a
    custom one. Sizes as scikit-learn's train_test_split makes them: the test part rounded up."""
    spec = config["datasets"][dataset]
    if "mirrors" in spec or "md5" in spec:
        return None
    if "torchvision" in spec:
        train, test = TORCHVISION_SIZES[spec["torchvision"]]
    else:
        test = math.ceil(DIGITS_SIZE * spec.get("test_fraction", 0.3))
        train = DIGITS_SIZE - test
    return train - math.ceil(train * config["split"]["validation_fraction"]), test


def study_seeds(config: dict, study: str, regime: str) -> list[int]:
    """A study's seeds in ``regime``: ``regime_overrides.<regime>.seeds``, else the study's."""
    spec = config["studies"][study]
    return list(spec.get("regime_overrides", {}).get(regime, {}).get("seeds", spec["seeds"]))


def paper_names(config: dict, datasets) -> dict[str, str]:
    """Data set -> its name in the thesis's tables (its ``paper_name``, else its own name)."""
    return {d: config["datasets"][d].get("paper_name", d) for d in datasets}


def report_settings(config: dict, study: str | None = None) -> dict[str, Any]:
    """The ``report`` block with ``REPORT_DEFAULTS`` filled in, updated by ``study``'s own
    ``report`` block (plotted layers of a study whose networks are shallower, say)."""
    own = config["studies"][study].get("report", {}) if study else {}
    return {**REPORT_DEFAULTS, **config.get("report", {}), **own}


def model_kwargs(train: dict[str, Any]) -> dict[str, Any]:
    """The network's settings among ``train`` (those present: ``arch_train`` keeps an
    architecture's own)."""
    kwargs = {k: train[k] for k in MODEL_KEYS if k in train}
    if "resnet_blocks" in kwargs:
        kwargs["resnet_blocks"] = tuple(kwargs["resnet_blocks"])
    return kwargs


def arch_train(train: dict[str, Any], arch: str) -> dict[str, Any]:
    """``train`` less the network settings ``arch`` does not read (``ARCHITECTURES[arch].settings``):
    what shapes one run of it, so that e.g. a ResNet setting reruns no MLP."""
    own = set(ARCHITECTURES[arch].settings)
    return {k: v for k, v in train.items() if k not in MODEL_KEYS or k in own}


def train_config(train: dict[str, Any], regime: str, seed: int, device: str,
                 member: str = "bank") -> "TrainConfig":
    """The ``TrainConfig`` of one run; ``member`` is ``bank`` or ``static-β`` (separate runs)."""
    from .train import TrainConfig

    fields = {k: v for k, v in train.items() if k not in MODEL_KEYS}
    fields["betas"] = tuple(fields["betas"])
    fields["estimators"] = tuple(fields["estimators"])
    if regime in FULL_BATCH_REGIMES:
        fields["batch_size"] = None
    separate = None if member == "bank" else float(member.removeprefix("static-"))
    return TrainConfig(**fields, seed=seed, device=device, separate_beta=separate)


def run_expectation(config: dict, study: str, regime: str, member: str = "bank") -> dict[str, Any]:
    """What one run's files should hold: its epochs and its estimators' rows (``readback``)."""
    train = study_train(config, study, regime)
    return {"epochs": train["epochs"],
            "estimators": run_estimators(train["estimators"], train["betas"], member)}


def members(config: dict, study: str) -> list[str]:
    """Training jobs per (dataset, regime, arch, seed): the bank, plus one per static β when the
    study follows the thesis's separate-runs protocol."""
    if not PROTOCOLS[config["studies"][study].get("protocol", "bank")].per_beta:
        return ["bank"]
    return ["bank"] + [static_name(b) for b in study_train(config, study)["betas"]]


def shift_settings(config: dict) -> dict[str, Any]:
    """The ``shift`` block with its defaults (``shift_defaults``) filled in."""
    return {**shift_defaults(), **config.get("shift", {})}


def shift_studies(config: dict) -> list[str]:
    """The studies scored under distribution shift (``shift: true``, or a mapping narrowing the block)."""
    return [name for name, spec in config["studies"].items()
            if spec.get("shift", False) is True or isinstance(spec.get("shift"), dict)]


def study_shift(config: dict, study: str) -> dict[str, Any]:
    """The shift settings a study's runs are scored with: the ``shift`` block (``shift_settings``)
    with the study's own mapping over it, where it has one (``studies.<study>.shift: {...}``: its
    own corruptions, severities, streams, rules or number of test samples — fewer for a costly
    network's runs; ``regimes``: score only those regimes' runs). Each set is generated once per
    data set, whichever studies ask for it."""
    own = config["studies"][study].get("shift")
    return {**shift_settings(config), **own} if isinstance(own, dict) else shift_settings(config)


def shift_batch_size(config: dict, study: str, regime: str) -> int | None:
    """Samples per test batch of the rows that use test batches: the run's training batch size,
    as its prediction-time BN row (None in full batch: the whole set as one batch)."""
    return None if regime in FULL_BATCH_REGIMES else study_train(config, study, regime)["batch_size"]


def _check_shift(config: dict) -> None:
    """The ``shift`` block's values (the schema refuses most; this says what to do too), and the
    data sets of the studies scored under shift: the corruptions are written for 28x28 grayscale."""
    shift = shift_settings(config)
    defaults = shift_defaults()
    for key in ("corruptions", "severities"):
        unknown = [v for v in shift[key] if v not in defaults[key]]
        if unknown:
            raise ConfigError(f"shift.{key}: {unknown[0]!r} is not one of {defaults[key]}")
    if not shift["alpha"] > 0:
        raise ConfigError(f"shift.alpha: {shift['alpha']!r}, but a Dirichlet concentration must be > 0 "
                          "(NOTE's default: 0.1)")
    if not shift["prior"] >= 0:
        raise ConfigError(f"shift.prior: {shift['prior']!r}, but N, the source samples' worth of prior in "
                          "the source/target mix, must be >= 0 (0: the test batch alone)")
    for name in shift_studies(config):
        _check_shift_reference(config, name)
        regimes = study_regimes(config, name)
        unknown = [r for r in study_shift(config, name).get("regimes", []) if r not in regimes]
        if unknown:
            raise ConfigError(f"studies.{name}.shift.regimes: {unknown[0]!r} is not a regime of the study "
                              f"(regimes: {regimes})")
        for dataset in config["studies"][name]["datasets"]:
            kind = config["datasets"][dataset].get("torchvision")
            if kind not in SHIFT_DATASETS:
                raise ConfigError(f"studies.{name}.shift: data set {dataset!r} ({kind or 'scikit-learn digits, 8x8'}) "
                                  f"is not 28x28 grayscale, which the corruptions are written for "
                                  f"(data sets of torchvision {', '.join(SHIFT_DATASETS)}); drop it from the "
                                  f"study or set shift: false")
            sizes = dataset_sizes(config, dataset)
            samples = study_shift(config, name)["test_samples"]
            if samples is not None and sizes is not None and samples > sizes[1]:
                own = config["studies"][name]["shift"]
                key = f"studies.{name}.shift" if isinstance(own, dict) and "test_samples" in own else "shift"
                raise ConfigError(f"{key}.test_samples: {samples} is more than the {sizes[1]} test samples of {dataset!r} "
                                  f"(studies.{name}); use at most {sizes[1]}, or null for all")


def shift_grid(config: dict, dataset: str) -> list[tuple[str, int]]:
    """Every (corruption, severity) set generated for ``dataset``: the union over the shift
    studies on it (``study_shift``), in the corruption table's and severity order. What the data
    set's md5 manifest lists."""
    order = shift_defaults()["corruptions"]
    grid = {(c, s) for name in shift_studies(config) if dataset in config["studies"][name]["datasets"]
            for own in [study_shift(config, name)] for c in own["corruptions"] for s in own["severities"]}
    return sorted(grid, key=lambda cs: (order.index(cs[0]), cs[1]))


def _check_shift_reference(config: dict, study: str) -> None:
    """The shift tables' relative error divides by the default EMA's (``DEFAULT_ESTIMATOR``, the
    mCE reference): every run of a shift study must carry that row."""
    for regime in study_regimes(config, study):
        train = study_train(config, study, regime)
        if DEFAULT_ESTIMATOR not in run_estimators(train["estimators"], train["betas"]):
            key = f"studies.{study}" + (f".regime_overrides.{regime}" if regime in
                                        config["studies"][study].get("regime_overrides", {}) else "")
            raise ConfigError(f"{key}.train: the {regime} runs carry no {DEFAULT_ESTIMATOR!r} row (estimators "
                              f"{list(train['estimators'])}, betas {list(train['betas'])}), the reference of the "
                              "shift tables' relative error (shift: true); add 'static' and β 0.1")


def check(config: dict) -> None:
    """Everything the schema cannot say; raises ``ConfigError`` naming key and value."""
    _check_finite(config)
    _check_data_root(config["data_root"])
    studies = config["studies"]
    if config["default_study"] not in studies:
        raise ConfigError(f"default_study: {config['default_study']!r} is not a study "
                          f"(studies: {sorted(studies)})")
    used = dict.fromkeys(d for study in studies.values() for d in study["datasets"] if d in config["datasets"])
    for dataset in used:
        _check_split_parts(config, dataset)
    for name, study in studies.items():
        key = f"studies.{name}"
        for dataset in study["datasets"]:
            if dataset not in config["datasets"]:
                raise ConfigError(f"{key}.datasets: unknown data set {dataset!r} "
                                  f"(known: {sorted(config['datasets'])})")
        if study.get("rounding_of", name) not in studies or study.get("rounding_of") == name:
            raise ConfigError(f"{key}.rounding_of: {study['rounding_of']!r} is not another study "
                              f"(studies: {sorted(studies)})")
        regimes = study_regimes(config, name)
        if "rounding_of" in study:
            _check_rounding_reference(config, name)
        for regime, override in study.get("regime_overrides", {}).items():
            if regime not in regimes:
                raise ConfigError(f"{key}.regime_overrides.{regime}: the study has no regime "
                                  f"{regime!r} (regimes: {regimes})")
            if family_batch_size(regime) is not None and "batch_size" in override.get("train", {}):
                raise ConfigError(f"{key}.regime_overrides.{regime}.train.batch_size: "
                                  f"{override['train']['batch_size']}, but the regime's name sets it "
                                  f"({family_batch_size(regime)})")
        for regime in regimes:
            train = study_train(config, name, regime)
            _check_betas(key, train)
            _check_own_seeds(key, study, train, study_seeds(config, name, regime))
            if regime not in FULL_BATCH_REGIMES:
                _check_batch_size(config, _batch_size_key(key, study, regime), study, train)
            _check_layers(report_settings(config, name), key, study, train)
            _check_xbn_groups(key, study, train)
            _check_esm_estimator(config, name, regime)
            if train["batch_free"] == "groupnorm" and train["width"] % min(train["groups"], train["width"]):
                raise ConfigError(f"{key}.train.groups: {train['groups']} does not divide width {train['width']}")
    _check_shift(config)


def _batch_size_key(key: str, study: dict, regime: str) -> str:
    """Where a mini-batch regime's batch size is written."""
    if family_batch_size(regime) is None:
        return f"{key}.train.batch_size"
    return f"{key}.batch_sizes" if "batch_sizes" in study else f"{key}.regimes"


def _check_betas(key: str, train: dict) -> None:
    """Two βs must not share a row name (``static_name`` keeps ten decimals)."""
    names = [static_name(b) for b in train["betas"]]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ConfigError(f"{key}.train.betas: {train['betas']} give the same estimator name "
                          f"{clash[0]!r} twice; use βs that differ within ten decimals")


def _check_own_seeds(key: str, study: dict, train: dict, seeds: list[int]) -> None:
    """A protocol whose members train from their own seeds (``training_seed``) needs βs to three
    decimals, or two members would share a seed, and seeds whose derived seeds still fit 63 bits."""
    if not PROTOCOLS[study.get("protocol", "bank")].own_seed:
        return
    finer = [b for b in train["betas"] if abs(1000 * b - round(1000 * b)) > 1e-9]
    if finer:
        raise ConfigError(f"{key}.train.betas: {finer[0]} has more than three decimals; protocol "
                          f"{study['protocol']!r} derives each member's seed from 1,000 · β")
    largest = (2**63 - 1 - 1000) // SEED_STRIDE
    if max(seeds) > largest:
        raise ConfigError(f"{key}.seeds: {max(seeds)} is above {largest}, the largest seed whose "
                          f"members' seeds (seed · {SEED_STRIDE:,} + 1,000 · β) fit 63 bits under protocol "
                          f"{study['protocol']!r}")


def _check_batch_size(config: dict, key: str, study: dict, train: dict) -> None:
    for dataset in study["datasets"]:
        sizes = dataset_sizes(config, dataset)
        if sizes is not None and train["batch_size"] > sizes[0]:  # None: a custom data set
            raise ConfigError(f"{key}: {train['batch_size']} is larger than the {sizes[0]} "
                              f"training samples of {dataset!r}")


def _check_layers(report: dict, key: str, study: dict, train: dict) -> None:
    """The plotted layers must exist in every network whose layers the figures index: each BN
    architecture, or the BN-BFN one where the study has no BN network (``primary_arch``: the
    figures then plot its layers; a BN network's twin is shown at its nearest BN layer)."""
    plotted = [a for a in study["archs"] if a in BATCH_NORM_ARCHS] or [primary_arch(study["archs"])]
    for arch in plotted:
        count = batchnorm_count(arch, train)
        for name, layers in (("beta_layer", [report["beta_layer"]]), ("esm_layers", report["esm_layers"])):
            for layer in layers:
                if layer > count:
                    where = f"{key}.report" if name in study.get("report", {}) else "report"
                    raise ConfigError(f"{where}.{name}: layer {layer} does not exist in {key}'s "
                                      f"{arch!r}, which has {count} BN layers")


def _check_xbn_groups(key: str, study: dict, train: dict) -> None:
    """XBNBlock-P2's GroupNorm groups must come out whole and divide the width (``xbn_group_count``)."""
    if "resnet50-xbnblock-p2" not in study["archs"]:
        return
    channels, groups = train["resnet_channels"], train["xbn_groups"]
    if xbn_group_count(channels, groups) is None:
        raise ConfigError(f"{key}.train.resnet_channels / xbn_groups: XBNBlock-P2's {groups} GroupNorm groups "
                          f"at 64 channels scale to {groups * channels / 64:g} groups at resnet_channels "
                          f"{channels}, which must be a whole number dividing {channels} (e.g. "
                          f"resnet_channels a multiple of {64 // math.gcd(64, groups)})")


def _check_finite(node: Any, path: tuple = ()) -> None:
    """No NaN or infinity anywhere (YAML's ``.nan``, ``.inf``, ``-.inf``): the schema's bounds
    let NaN through (every comparison with it is false), and training fails only at epoch 1."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"{_dotted(list(path)) or 'config'}: {node} is not a finite number; "
                          "write a finite number (YAML's .nan, .inf and -.inf are refused)")
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for child_key, child in children:
        _check_finite(child, (*path, child_key))


def _check_data_root(root: str) -> None:
    """``data_root`` is a directory, or one the download rule can create: its nearest existing
    ancestor is a writable directory (nothing is created here)."""
    path = Path(root)
    if path.is_dir():
        return
    if path.exists() or path.is_symlink():
        raise ConfigError(f"data_root: {root!r} is not a directory (a file, or a broken link); point data_root at "
                          "a directory, or at a path that does not exist yet (it is created)")
    ancestor = next(p for p in path.absolute().parents if p.exists())
    if not ancestor.is_dir():
        raise ConfigError(f"data_root: {root!r} cannot be created: {str(ancestor)!r} is a file, not a "
                          "directory; point data_root elsewhere")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"data_root: {root!r} cannot be created: {str(ancestor)!r} is not writable; "
                          "create it by hand or point data_root elsewhere")


def _check_split_parts(config: dict, dataset: str) -> None:
    """Every part of a stratified split holds at least one sample per class, as scikit-learn's
    ``train_test_split`` demands (it rounds the split-off part up: ``ceil(fraction * n)``):
    digits' official test part (``test_fraction``) and the rest, then the 80/20 split
    (``split.validation_fraction``) of the training samples. Custom data sets: sizes unknown."""
    spec = config["datasets"][dataset]
    if "mirrors" in spec or "md5" in spec:
        return
    if "torchvision" in spec:
        classes = TORCHVISION_CLASSES[spec["torchvision"]]
        training = TORCHVISION_SIZES[spec["torchvision"]][0]
    else:
        classes = DIGITS_CLASSES
        training = _check_part_sizes(f"datasets.{dataset}.test_fraction", spec.get("test_fraction", 0.3),
                                     DIGITS_SIZE, classes, dataset, ("official test part", "training part"))
    _check_part_sizes("split.validation_fraction", config["split"]["validation_fraction"], training, classes,
                      dataset, ("validation part (ESM set)", "training part"))


def _check_part_sizes(key: str, fraction: float, samples: int, classes: int, dataset: str,
                      parts: tuple[str, str]) -> int:
    """Refuse ``fraction`` of ``samples`` where a part gets fewer samples than ``classes``;
    returns the size of the part that stays."""
    split_off = math.ceil(fraction * samples)
    for part, size in zip(parts, (split_off, samples - split_off)):
        if size < classes:
            lowest = math.ceil(classes / samples * 1e4) / 1e4
            highest = math.floor((samples - classes) / samples * 1e4) / 1e4
            plural = "" if size == 1 else "s"
            raise ConfigError(f"{key}: {fraction} leaves {size} sample{plural} in the {part} of {dataset!r} "
                              f"({samples} samples), fewer than its {classes} classes; a stratified "
                              f"split needs one sample per class in each part: use {lowest} to {highest}")
    return samples - split_off


def esm_rows(train: dict) -> list[str]:
    """The estimator rows with an ESM that a run with these training settings logs (names as
    ``dmbn.names.run_estimators`` gives them, but the kinds without an ESM pass: ``test-batch``)."""
    return [row for row in run_estimators(train["estimators"], train["betas"])
            if ESTIMATORS[estimator_kind(row)].stage != "none"]


def _rows_summary(train: dict) -> str:
    """A study's rows in short: per-β kinds once, with the β grid."""
    per_beta = [f"{k}-β" for k in train["estimators"] if ESTIMATORS[k].per_beta]
    single = [k for k in train["estimators"] if not ESTIMATORS[k].per_beta and ESTIMATORS[k].stage != "none"]
    grid = ", ".join(static_name(b).removeprefix("static-") for b in train["betas"])
    return f"{', '.join(per_beta)} for β in [{grid}]" + "".join(f", {k}" for k in single)


def _check_esm_estimator(config: dict, study: str, regime: str) -> None:
    """``report.esm_estimator`` must be a row the study's runs in ``regime`` log, or its figure
    says only that no ESM was logged."""
    estimator = report_settings(config, study)["esm_estimator"]
    train = study_train(config, study, regime)
    if estimator in esm_rows(train):
        return
    own = config["studies"][study].get("report", {})
    where = (f"studies.{study}.report.esm_estimator" if "esm_estimator" in own else
             "report.esm_estimator" + ("" if "esm_estimator" in config.get("report", {}) else " (the default)"))
    raise ConfigError(f"{where}: {estimator!r} is no row of studies.{study}'s runs in regime {regime!r}: "
                      f"its ESM figure would be empty\nThose runs carry {_rows_summary(train)}. Pick "
                      f"one of these rows, or set studies.{study}.report.esm_estimator for this study alone.")


def _check_rounding_reference(config: dict, study: str) -> None:
    """A rounding comparison pairs each run with the reference study's run of the same data set,
    regime, architecture and seed: each must exist there, and the reference must not train data
    sets this study has not (they would be trained for nothing)."""
    spec, reference = config["studies"][study], config["studies"][study]["rounding_of"]
    other = config["studies"][reference]
    key = f"studies.{study}.rounding_of"
    if sorted(spec["datasets"]) != sorted(other["datasets"]):
        raise ConfigError(f"{key}: {reference!r} trains on data sets {other['datasets']}, this study on "
                          f"{spec['datasets']}; a rounding comparison needs the same data sets (the "
                          f"reference's runs are trained too): reference a study with the same data sets")
    lacking = [a for a in spec["archs"] if a not in other["archs"]]
    if lacking:
        raise ConfigError(f"{key}: {reference!r} has no architecture {lacking} (it has {other['archs']}), "
                          f"so those runs have nothing to pair with")
    reference_regimes = study_regimes(config, reference)
    for regime in study_regimes(config, study):
        if regime not in reference_regimes:
            raise ConfigError(f"{key}: {reference!r} has no regime {regime!r} (regimes: {reference_regimes}), "
                              f"so those runs have nothing to pair with")
        seeds = [s for s in study_seeds(config, study, regime) if s not in study_seeds(config, reference, regime)]
        if seeds:
            raise ConfigError(f"{key}: {reference!r} has no seeds {seeds} in regime {regime!r} "
                              f"(seeds: {study_seeds(config, reference, regime)}), so those runs have "
                              f"nothing to pair with")
