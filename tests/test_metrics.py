import pytest

from dmbn.metrics import classification_metrics


def test_metrics_by_hand_with_a_class_never_predicted():
    # classes 0, 1, 2; class 2 is never predicted
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 0, 1]
    m = classification_metrics(y_true, y_pred, 3)
    assert m["accuracy"] == pytest.approx(3 / 6)
    # recall: c0 1/2, c1 2/2, c2 0/2
    assert m["sensitivity"] == pytest.approx((0.5 + 1 + 0) / 3)
    # specificity TN/(TN+FP): c0: negatives {1,1,2,2}, FP=1 (a 2 predicted 0) -> 3/4
    # c1: negatives {0,0,2,2}, FP=2 -> 2/4;  c2: negatives 4, FP=0 -> 1
    assert m["specificity"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    # F1: c0 p=1/2 r=1/2 -> 1/2; c1 p=2/4 r=1 -> 2/3; c2 -> 0
    assert m["f1"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)


def test_class_absent_from_both_counts_in_macro_average():
    m = classification_metrics([0, 1], [0, 1], 4)
    assert m["accuracy"] == 1.0
    assert m["sensitivity"] == pytest.approx(0.5)  # classes 2, 3 have recall 0 by convention
    assert m["specificity"] == pytest.approx(1.0)


def test_f1_counts_classes_absent_from_both_as_zero():
    m = classification_metrics([0, 1, 1], [0, 1, 1], 4)
    assert m["f1"] == pytest.approx((1 + 1 + 0 + 0) / 4)  # classes 2, 3: no samples, no predictions


def test_a_class_with_no_negatives_has_specificity_zero():
    # every sample is class 0: class 0 has no negatives (TN + FP = 0); class 1: TN 2 of 3
    m = classification_metrics([0, 0, 0], [0, 1, 0], 2)
    assert m["specificity"] == pytest.approx((0.0 + 2 / 3) / 2)


def test_undefined_ratios_are_zero_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's UndefinedMetricWarning, numpy's 0/0
        m = classification_metrics([0, 0, 1], [0, 2, 2], 4)
    assert m["sensitivity"] == pytest.approx((1 / 2 + 0 + 0 + 0) / 4)
