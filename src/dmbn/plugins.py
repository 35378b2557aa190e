"""A user's estimator modules in a workflow run (config key ``estimator_modules``; torch-free).

Each entry is an importable module name (installed, or on PYTHONPATH) or the path of a ``.py``
file (relative to Snakemake's working directory) whose import registers estimators with
``dmbn.register_estimator``. The Snakefile imports them before the config is validated (the
schema's ``train.estimators`` enum is read from the registry) and exports the list in
``DMBN_ESTIMATOR_MODULES``; every job's script imports ``dmbn``, whose ``__init__`` imports the
exported modules again in that process, so training, evaluation, read-back checks, tables and
figures all know the user's kinds without a line in any script.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

ENVIRONMENT = "DMBN_ESTIMATOR_MODULES"  # a JSON list of module names and absolute .py paths
KEY = "estimator_modules"


class EstimatorModuleError(ImportError):
    """An entry of ``estimator_modules`` that cannot be imported: the entry and the reason."""


def export_estimator_modules(entries, base: str | Path = ".") -> list[ModuleType]:
    """Import ``entries`` (the config's ``estimator_modules``) and hand them to the jobs' processes
    through the environment. Paths become absolute here, so jobs find them from any directory."""
    if not isinstance(entries, list) or not all(isinstance(e, str) and e for e in entries):
        raise EstimatorModuleError(f"{KEY}: {entries!r} is no list of module names or .py paths")
    resolved = [str((Path(base) / e).resolve()) if e.endswith(".py") else e for e in entries]
    modules = [_load(e, f"{KEY}[{i}]") for i, e in enumerate(resolved)]
    os.environ[ENVIRONMENT] = json.dumps(resolved)
    return modules


def load_exported_modules() -> list[ModuleType]:
    """Import the modules the workflow exported (none outside a workflow run)."""
    text = os.environ.get(ENVIRONMENT)
    if not text:
        return []
    return [_load(e, f"{KEY} (exported in {ENVIRONMENT})") for e in json.loads(text)]


def _load(entry: str, where: str) -> ModuleType:
    """Import a module by name, or a ``.py`` file by path (once per process: a module already
    imported is not run again, so its registrations are not repeated)."""
    try:
        if not entry.endswith(".py"):
            return importlib.import_module(entry)
        path = Path(entry)
        name = f"dmbn_user_{path.stem}"
        loaded = sys.modules.get(name)
        if loaded is not None and Path(getattr(loaded, "__file__", "")) == path:
            return loaded
        if not path.is_file():
            raise FileNotFoundError(f"no such file {path}")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    except EstimatorModuleError:
        raise
    except Exception as error:
        raise EstimatorModuleError(f"{where}: {entry!r} cannot be imported: {type(error).__name__}: {error}. "
                                   "Give an importable module name (installed or on PYTHONPATH) or the path "
                                   "of a .py file relative to Snakemake's working directory") from error
