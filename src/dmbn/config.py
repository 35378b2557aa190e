"""The study configuration: validation against the JSON schema, checks the schema cannot
express, and settings per run.

The workflow calls ``validate`` (the schema) and then ``check``; both run before any job. Every
error's first line names the offending key and value (``train.batch_size: 1 is less than ...``).
Integers must be written as integers: ``50.0`` is rejected where the schema says ``integer``
(JSON Schema itself accepts it, and ``seeds: [1.0]`` would name a folder ``seed1.0``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import yaml

from .names import (BATCH_NORM_ARCHS, ESTIMATORS, FULL_BATCH_REGIMES, estimator_name_pattern,
                    static_name)

if TYPE_CHECKING:  # the workflow imports this module: keep torch out of it
    from .train import TrainConfig

MODEL_KEYS = ("depth", "width", "batch_free", "groups", "resnet_blocks", "resnet_width")
# Training-set sizes before the validation split (digits: after its fixed 30 % test part).
TRAIN_SIZES = {"MNIST": 60000, "FashionMNIST": 60000, "CIFAR10": 50000, "CIFAR100": 50000, None: 1257}


# The report's settings where a configuration leaves them out: the one place that holds them.
REPORT_DEFAULTS = {
    "decimals": 3,
    "beta_layer": 18,          # Fig 5.1: β* per epoch of this BN layer
    "esm_layers": [2, 19],     # Figs 5.2 and 5.3
    "esm_estimator": "dmbn",   # ESM per layer and epoch
    "confidence": 0.95,        # paired comparisons
    "figure_dpi": 150,
}


class ConfigError(ValueError):
    """A configuration that cannot run; the message names the key and the value."""


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
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


def validate(config: dict, schema: str | Path) -> None:
    """Check ``config`` against the JSON schema and fill in its defaults; raises ``ConfigError``
    whose first line names key and value of the most relevant problem, one line for each other."""
    import jsonschema  # the workflow's process needs it, training jobs do not

    with open(schema) as handle:
        validator = _validator_class()(with_registry(yaml.safe_load(handle)))
    errors = list(validator.iter_errors(config))
    while errors and any(_read_string_as_yaml(config, e) for e in errors):
        errors = list(validator.iter_errors(config))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        lines = [_describe(best)] + [_describe(e) for e in errors if e is not best]
        if any(e.validator == "type" and isinstance(e.instance, str) for e in errors):
            lines.append(NESTED_CONFIG_ADVICE)
        raise ConfigError("\n".join(lines))


def with_registry(schema: dict) -> dict:
    """The schema with its estimator definitions derived from ``dmbn.names.ESTIMATORS``: the kinds
    ``train.estimators`` may list, and the row names that have an ESM (``report.esm_estimator``)."""
    definitions = schema["$defs"]
    definitions["estimator_kind"] = {"enum": list(ESTIMATORS)}
    definitions["estimator_name"] = {"type": "string",
                                     "pattern": estimator_name_pattern(("epoch", "chosen", "final"))}
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
    if error.validator == "type" and error.validator_value == "integer" and isinstance(error.instance, float):
        message += " (write integers without a decimal point)"
    return f"{_dotted(path) or 'config'}: {message}"


def _dotted(path: list) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path).lstrip(".")


def study_train(config: dict, study: str, regime: str | None = None) -> dict[str, Any]:
    """The training settings of a study's runs in ``regime``: the global ``train`` block, updated
    by the study's own, updated by the study's ``regime_overrides.<regime>.train``."""
    spec = config["studies"][study]
    override = spec.get("regime_overrides", {}).get(regime, {}) if regime else {}
    return {**config["train"], **spec.get("train", {}), **override.get("train", {})}


def study_seeds(config: dict, study: str, regime: str) -> list[int]:
    """A study's seeds in ``regime``: ``regime_overrides.<regime>.seeds``, else the study's."""
    spec = config["studies"][study]
    return list(spec.get("regime_overrides", {}).get(regime, {}).get("seeds", spec["seeds"]))


def report_settings(config: dict, study: str | None = None) -> dict[str, Any]:
    """The ``report`` block with ``REPORT_DEFAULTS`` filled in, updated by ``study``'s own
    ``report`` block (plotted layers of a study whose networks are shallower, say)."""
    own = config["studies"][study].get("report", {}) if study else {}
    return {**REPORT_DEFAULTS, **config.get("report", {}), **own}


def model_kwargs(train: dict[str, Any]) -> dict[str, Any]:
    kwargs = {k: train[k] for k in MODEL_KEYS}
    kwargs["resnet_blocks"] = tuple(kwargs["resnet_blocks"])
    return kwargs


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


def members(config: dict, study: str) -> list[str]:
    """Training jobs per (dataset, regime, arch, seed): the bank, plus one per static β when the
    study follows the thesis's separate-runs protocol."""
    if config["studies"][study].get("protocol", "bank") == "bank":
        return ["bank"]
    return ["bank"] + [static_name(b) for b in study_train(config, study)["betas"]]


def batchnorm_count(arch: str, train: dict[str, Any]) -> int:
    """How many BN layers an architecture has (the layers ESM is logged for)."""
    if arch == "mlp":
        return train["depth"]
    if arch == "mlp-bnbfn":
        return (train["depth"] + 1) // 2
    blocks = sum(train["resnet_blocks"])
    downsample = len(train["resnet_blocks"])  # the first block of every stage projects
    return 1 + 3 * blocks + downsample if arch == "resnet50" else 2 * blocks + downsample


def check(config: dict) -> None:
    """Everything the schema cannot say; raises ``ConfigError`` naming key and value."""
    studies = config["studies"]
    if config["default_study"] not in studies:
        raise ConfigError(f"default_study: {config['default_study']!r} is not a study "
                          f"(studies: {sorted(studies)})")
    for name, study in studies.items():
        key = f"studies.{name}"
        for dataset in study["datasets"]:
            if dataset not in config["datasets"]:
                raise ConfigError(f"{key}.datasets: unknown data set {dataset!r} "
                                  f"(known: {sorted(config['datasets'])})")
        if study.get("rounding_of", name) not in studies or study.get("rounding_of") == name:
            raise ConfigError(f"{key}.rounding_of: {study['rounding_of']!r} is not another study "
                              f"(studies: {sorted(studies)})")
        for regime in study.get("regime_overrides", {}):
            if regime not in study["regimes"]:
                raise ConfigError(f"{key}.regime_overrides.{regime}: the study has no regime "
                                  f"{regime!r} (regimes: {study['regimes']})")
        for regime in study["regimes"]:
            train = study_train(config, name, regime)
            _check_betas(key, train)
            if regime == "mini":
                _check_batch_size(config, key, study, train)
            _check_layers(report_settings(config, name), key, study, train)
            if train["batch_free"] == "groupnorm" and train["width"] % min(train["groups"], train["width"]):
                raise ConfigError(f"{key}.train.groups: {train['groups']} does not divide width {train['width']}")


def _check_betas(key: str, train: dict) -> None:
    """Two βs must not share a row name (``static_name`` keeps ten decimals)."""
    names = [static_name(b) for b in train["betas"]]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise ConfigError(f"{key}.train.betas: {train['betas']} give the same estimator name "
                          f"{clash[0]!r} twice; use βs that differ within ten decimals")


def _check_batch_size(config: dict, key: str, study: dict, train: dict) -> None:
    for dataset in study["datasets"]:
        spec = config["datasets"][dataset]
        if "mirrors" in spec or "md5" in spec:
            continue  # a custom data set of unknown size
        size = int(TRAIN_SIZES[spec.get("torchvision")] * (1 - config["split"]["validation_fraction"]))
        if train["batch_size"] > size:
            raise ConfigError(f"{key}.train.batch_size: {train['batch_size']} is larger than the "
                              f"{size} training samples of {dataset!r}")


def _check_layers(report: dict, key: str, study: dict, train: dict) -> None:
    bn_archs = [a for a in study["archs"] if a in BATCH_NORM_ARCHS]
    for arch in bn_archs:
        count = batchnorm_count(arch, train)
        for name, layers in (("beta_layer", [report["beta_layer"]]), ("esm_layers", report["esm_layers"])):
            for layer in layers:
                if layer > count:
                    where = f"{key}.report" if name in study.get("report", {}) else "report"
                    raise ConfigError(f"{where}.{name}: layer {layer} does not exist in {key}'s "
                                      f"{arch!r}, which has {count} BN layers")
