"""Multi-class lesion segmentation: the delivered lesion mask becomes a label map of the lesion's
class, and the class-aware scores of ISIC 2017 Part 3 (melanoma, seborrheic keratosis, nevus).

A three-class classifier (``classification.train --set task=three_class``) names the class of the
lesion; the label map is 0 outside the delivered mask and that class inside it. The ground truth
of a pixel is the lesion mask times the image's Part 3 class, so a lesion pixel counts for class c
only when both the label map and the ground truth say c: a wrong class gives that class IoU 0
while the binary mask's IoU stays what it was.

The classifier itself is :class:`classification.lesion_classifier.LesionClassifier` (torch), the
label values are :data:`classification.tasks.LABEL_NAMES`; this module is the label arithmetic
alone, which a run's summary needs without the network.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from classification.tasks import LABEL_NAMES, LesionClass

N_LABELS = len(LABEL_NAMES)


def label_map(mask: np.ndarray | None, hw: tuple[int, int], lesion: LesionClass) -> np.ndarray:
    """(H, W) uint8 label map of a delivered (H, W) bool mask (None: all background): the lesion's
    class inside the mask."""
    labels = np.zeros(hw, np.uint8)
    if mask is not None:
        labels[mask] = lesion.label
    return labels


def true_label(labels: dict[str, float]) -> int | None:
    """The image's Part 3 class as a label value, or None when the dataset does not give both
    ISIC 2017 columns (``melanoma``, ``seborrheic_keratosis``; both 0: nevus)."""
    if "melanoma" not in labels or "seborrheic_keratosis" not in labels:
        return None
    if labels["melanoma"] >= 0.5:
        return 1
    return 2 if labels["seborrheic_keratosis"] >= 0.5 else 3


def pixel_confusion(predicted: np.ndarray, truth_mask: np.ndarray, truth_label: int) -> np.ndarray:
    """(4, 4) int64 pixel counts, rows the ground truth (mask x ``truth_label``), columns the
    (H, W) uint8 ``predicted`` label map."""
    truth = truth_mask.astype(np.int64) * truth_label
    return np.bincount((truth * N_LABELS + predicted.astype(np.int64)).ravel(), minlength=N_LABELS * N_LABELS).reshape(
        N_LABELS, N_LABELS
    )


def multiclass_summary(confusions: list[np.ndarray], image_pairs: list[tuple[int, int | None]]) -> dict[str, Any]:
    """Class-aware scores of a split: per-class IoU over all its pixels (summed ``confusions``),
    ``miou`` (their mean, background included), pixel accuracy; image-level accuracy and the 3 x 3
    confusion (rows true, columns predicted; melanoma, SK, nevus) of ``image_pairs`` (true label,
    predicted label or None for an image that failed, which counts as wrong)."""
    total = np.sum(confusions, axis=0) if confusions else np.zeros((N_LABELS, N_LABELS), np.int64)
    tp = np.diag(total).astype(float)
    union = total.sum(0) + total.sum(1) - tp
    iou = {name: (float(tp[c] / union[c]) if union[c] > 0 else None) for c, name in enumerate(LABEL_NAMES)}
    defined = [v for v in iou.values() if v is not None]
    image_confusion = np.zeros((3, 3), np.int64)
    for truth, predicted in image_pairs:
        if predicted is not None:
            image_confusion[truth - 1, predicted - 1] += 1
    return {
        "per_class_iou": iou,
        "miou": float(np.mean(defined)) if defined else None,
        "pixel_accuracy": float(tp.sum() / total.sum()) if total.sum() else None,
        "image_accuracy": (float(np.trace(image_confusion) / len(image_pairs)) if image_pairs else None),
        "image_confusion": image_confusion.tolist(),
        "image_classes": list(LABEL_NAMES[1:]),
        "n_images": len(image_pairs),
        "n_failed": sum(p is None for _, p in image_pairs),
    }
