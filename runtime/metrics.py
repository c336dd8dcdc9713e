"""Evaluation metrics for binary classifiers (REQUIREMENTS 8.3) and the JR/T 0221 accuracy bar."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

AUC_BAR_FUNDS = 0.75  # JR/T 0221-2021 section 8: funds-related scenarios
AUC_BAR_OTHER = 0.65


def binary_metrics(y_true, scores, threshold: float = 0.5, funds_related: bool = True) -> dict:
    """AUC, KS, precision/recall/F1 at `threshold`, log-loss, confusion matrix, and whether the
    JR/T 0221 AUC bar is met. `scores` are probabilities of the positive class."""
    y = np.asarray(y_true).astype(int)
    p = np.clip(np.asarray(scores, dtype=float), 1e-7, 1 - 1e-7)
    if y.size == 0 or y.size != p.size:
        raise ValueError(f"y_true, scores: need equal, non-zero lengths (got {y.size} and {p.size})")
    if len(np.unique(y)) < 2:
        raise ValueError("y_true: needs both classes to compute AUC and KS")
    fpr, tpr, _ = roc_curve(y, p)
    predicted = (p >= threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(y, predicted, average="binary", zero_division=0)
    tn, fp, fn, tp = confusion_matrix(y, predicted, labels=[0, 1]).ravel()
    auc = float(roc_auc_score(y, p))
    bar = AUC_BAR_FUNDS if funds_related else AUC_BAR_OTHER
    return {
        "auc": auc,
        "ks": float(np.max(tpr - fpr)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "threshold": threshold,
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "rows": int(y.size),
        "positive_rate": float(y.mean()),
        "jrt0221_auc_bar": bar,
        "jrt0221_auc_pass": auc >= bar,
    }
