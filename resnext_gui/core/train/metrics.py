"""Teaching's figures: accuracy, per-class precision and recall, the confusions and the classes recognised worst."""

from __future__ import annotations

from typing import Any

import numpy as np

WORST_SHOWN = 10  # classes named in the summary's "worst" list


def metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy; per class its precision and recall (None when undefined), photos and photos recognised; the
    confusions (true class taken for another, most frequent first); the classes recognised worst.

    Linear in photos and classes: the confusion matrix is kept as its non-zero cells (at most one a photo),
    never as classes x classes numbers (100 million at 10,000 classes).
    """
    k = len(labels)
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    right = t == p
    support = np.bincount(t, minlength=k)
    predicted = np.bincount(p, minlength=k)
    correct = np.bincount(t[right], minlength=k)
    per_class = {}
    for c, label in enumerate(labels):
        per_class[label] = {
            "precision": round(int(correct[c]) / int(predicted[c]), 4) if predicted[c] else None,
            "recall": round(int(correct[c]) / int(support[c]), 4) if support[c] else None,
            "support": int(support[c]),
            "correct": int(correct[c]),
        }
    pairs: dict[tuple[int, int], int] = {}
    for a, b in zip(t[~right].tolist(), p[~right].tolist(), strict=True):
        pairs[(a, b)] = pairs.get((a, b), 0) + 1
    confused = [{"true": labels[a], "predicted": labels[b], "photos": n}
                for (a, b), n in sorted(pairs.items(), key=lambda item: (-item[1], item[0]))]
    scored = [c for c in range(k) if support[c]]
    worst = sorted(scored, key=lambda c: (int(correct[c]) / int(support[c]), c))[:WORST_SHOWN]
    n = len(t)
    return {
        "accuracy": round(int(right.sum()) / n, 4) if n else None,
        "photos": n,
        "per_class": per_class,
        "confused": confused,
        "worst": [{"class": labels[c], "recall": per_class[labels[c]]["recall"]} for c in worst if correct[c] < support[c]],
    }


def confusion_matrix(validation: dict[str, Any], labels: list[str]) -> dict[tuple[int, int], int]:
    """The confusion matrix's non-zero cells {(true, predicted): photos} from metrics(): its diagonal is each
    class's photos recognised, the rest its confusions."""
    index = {label: i for i, label in enumerate(labels)}
    cells = {(index[label], index[label]): int(v["correct"])
             for label, v in (validation.get("per_class") or {}).items() if label in index and v.get("correct")}
    for entry in validation.get("confused") or []:
        if entry.get("true") in index and entry.get("predicted") in index:
            cells[(index[entry["true"]], index[entry["predicted"]])] = int(entry["photos"])
    return cells
