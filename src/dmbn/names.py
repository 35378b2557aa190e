"""Names shared by the library and the workflow (importable without torch)."""

from __future__ import annotations

STATIC_BETAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
ESTIMATOR_KINDS = ("static", "dmbn", "cma", "precise", "recalibrated")  # what a bank run can carry
DEFAULT_ESTIMATOR = "static-0.1"  # PyTorch's momentum; BN-BFN is reported with it, as in the thesis
BATCH_NORM_ARCHS = {"mlp": "mlp-bnbfn", "resnet50": "resnet50-xbnblock-p2"}  # BN arch -> BN-BFN twin
BATCH_FREE_ARCHS = {v: k for k, v in BATCH_NORM_ARCHS.items()}


def static_name(beta: float) -> str:
    """The name of the static EMA estimator with momentum ``beta``: ``static-0.3``."""
    return f"static-{beta:g}"

METRICS = ("accuracy", "sensitivity", "specificity", "f1")  # the thesis's test-set metrics
