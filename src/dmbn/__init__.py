"""dmbn: BatchNorm's inference statistics — an estimator bank, ESM, Dynamic Momentum BN.

``recalibrate(model, loader)`` re-estimates any model's BN statistics from any loader in one call
(PreciseBN or recalibrated; a drop-in for ``torch.optim.swa_utils.update_bn``). Attach an
``EstimatorBank`` to any model with ``nn.BatchNorm*d`` layers (``with EstimatorBank(model) as
bank:``), call ``observe()`` after each training forward, and evaluate with ``bank.use(name)``;
``dmbn.esm`` measures the estimation shift of any estimator. ``register_estimator`` adds a user's
own estimator class. Under ``torch.distributed`` the pooling estimators pool every rank's data
(``dmbn.distributed``). docs/LIBRARY.md has examples.
"""

from importlib import import_module

# Public names, loaded on first use so that torch-free modules (dmbn.config) import fast.
_EXPORTS = {
    "EstimatorBank": "bank", "precise_statistics": "estimators", "Estimator": "estimators",
    "ESTIMATORS": "names", "register_estimator": "names", "unregister_estimator": "names",
    "registered_estimator": "names",
    "STATIC_BETAS": "names", "static_name": "names",
    "expected_statistics": "esm", "measure_esm": "esm", "recalibrated_statistics": "esm",
    "EstimatorStatistics": "statistics", "LayerLayout": "statistics", "using_statistics": "statistics",
    "recalibrate": "library", "load_statistics": "library", "preserved": "bn_state",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'dmbn' has no attribute {name!r}")


# In a workflow's job, the user's estimator modules the Snakefile exported (dmbn.plugins; none
# elsewhere). Here, before any submodule loads, so a user's module that imports dmbn's modules
# finds none of them half-imported; every job script imports dmbn, so each knows the user's kinds.
from .plugins import load_exported_modules  # noqa: E402

load_exported_modules()
