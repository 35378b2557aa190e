"""dmbn: BatchNorm's inference statistics — an estimator bank, ESM, Dynamic Momentum BN.

Attach an ``EstimatorBank`` to any model with ``nn.BatchNorm*d`` layers, call ``observe()``
after each training forward, and evaluate with ``bank.use(name)``; ``dmbn.esm`` measures the
estimation shift of any estimator.
"""

from .estimators import STATIC_BETAS, EstimatorBank, precise_statistics, static_name
from .esm import expected_statistics, measure_esm, recalibrated_statistics
from .statistics import EstimatorStatistics, LayerLayout, using_statistics

__all__ = ["STATIC_BETAS", "EstimatorBank", "EstimatorStatistics", "LayerLayout", "expected_statistics",
           "measure_esm", "precise_statistics", "recalibrated_statistics", "static_name",
           "using_statistics"]
