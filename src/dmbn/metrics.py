"""Test-set metrics of the thesis: accuracy and macro-averaged sensitivity, specificity and F1."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, multilabel_confusion_matrix, recall_score

from .names import METRICS

__all__ = ["METRICS", "classification_metrics"]


def classification_metrics(y_true, y_pred, num_classes: int) -> dict[str, float]:
    """Accuracy, macro sensitivity (recall), macro specificity and macro F1 over ``num_classes``.

    Every class counts in the macro averages, also one that is never predicted (its recall and
    F1 are then 0) or absent from ``y_true``.
    """
    labels = np.arange(num_classes)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    per_class = multilabel_confusion_matrix(y_true, y_pred, labels=labels)  # [[tn, fp], [fn, tp]]
    tn, fp = per_class[:, 0, 0], per_class[:, 0, 1]
    negatives = tn + fp
    specificity = np.divide(tn, negatives, out=np.zeros(len(labels)), where=negatives > 0)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "sensitivity": float(recall_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "specificity": float(specificity.mean()),
        "f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    }
