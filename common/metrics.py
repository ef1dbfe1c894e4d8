"""Segmentation metrics at the original resolution, and their summaries.

An image whose pipeline failed has no mask; it is scored as an empty prediction (IoU 0) and
counted in every mean, never dropped.
"""

from __future__ import annotations

import numpy as np

METRIC_NAMES = ("iou", "dice", "precision", "recall", "f1")
IOU_SUCCESS = 0.65
FAIL_IOU = 0.5  # an image below this IoU counts as a failure

# The kinds of failure (IoU < FAIL_IOU) that the student's mistakes fall into. Over-segmentation:
# the mask is more than OVER_AREA times the ground truth's area and covers more than COVERED of it
# (the skin field outlined around a visible lesion). Under-segmentation, its mirror: the mask is
# less than 1 / OVER_AREA of the truth's area and more than COVERED of it lies inside the truth
# (a large faint lesion cut to a dark spot or its centre). Anything else, an empty or missing mask
# included, is "other".
OVER_AREA = 1.8
COVERED = 0.6
FAILURE_KINDS = ("over", "under", "other")


def mask_metrics(pred: np.ndarray | None, truth: np.ndarray) -> dict[str, float | None]:
    """Precision, recall, F1, IoU and Dice of boolean (H, W) masks. ``pred=None`` (a failure)
    scores 0 everywhere. Conventions for empty sets: an empty prediction of an empty truth is
    perfect (1.0); otherwise 0/0 is 0. ``area_ratio``: the mask's area over the truth's."""
    truth = truth.astype(bool)
    if pred is None:
        return {name: 0.0 for name in METRIC_NAMES}
    pred = pred.astype(bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {truth.shape} differ in size")
    tp = float(np.count_nonzero(pred & truth))
    fp = float(np.count_nonzero(pred)) - tp  # the same counts as pred & ~truth, ~pred & truth,
    fn = float(np.count_nonzero(truth)) - tp  # with one full-frame operation instead of five
    if tp + fp + fn == 0:
        return {**{name: 1.0 for name in METRIC_NAMES}, "area_ratio": 1.0}
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    # the mask's area over the truth's (None where the truth is empty): the failure kind's input
    area_ratio = (tp + fp) / (tp + fn) if tp + fn else None
    return {
        "iou": tp / (tp + fp + fn),
        "dice": 2 * tp / (2 * tp + fp + fn),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "area_ratio": area_ratio,
    }


def failure_kind(metrics: dict) -> str | None:
    """None for a success (IoU >= ``FAIL_IOU``); else ``"over"``, ``"under"`` or ``"other"`` (see
    :data:`OVER_AREA`). ``metrics``: one image's :func:`mask_metrics` (a failed image, without
    ``area_ratio``, is "other")."""
    if metrics["iou"] >= FAIL_IOU:
        return None
    ratio = metrics.get("area_ratio")
    if metrics.get("failed") or ratio is None:
        return "other"
    if ratio > OVER_AREA and metrics["recall"] > COVERED:
        return "over"
    if ratio < 1.0 / OVER_AREA and metrics["precision"] > COVERED:
        return "under"
    return "other"


def failure_counts(rows: list[dict]) -> dict[str, int]:
    """``{"over": n, "under": n, "other": n}`` among ``rows`` (per-image :func:`mask_metrics`)."""
    kinds = [failure_kind(r) for r in rows]
    return {kind: sum(k == kind for k in kinds) for kind in FAILURE_KINDS}


def summarise(per_image: dict[str, dict[str, dict]], methods: list[str]) -> dict[str, dict]:
    """Per method: mean of each metric, plus median / std of IoU and the share of images with
    IoU >= 0.65. ``per_image[id][method]`` is a metrics dict, with ``"failed": True`` on failure."""
    summary: dict[str, dict] = {}
    for method in methods:
        # (an image without ground truth may carry only its confidence under "final")
        rows = [per_image[i][method] for i in per_image if "iou" in per_image[i].get(method, {})]
        if not rows:
            continue
        entry: dict[str, float | int] = {}
        for name in METRIC_NAMES:
            entry[name] = float(np.mean([r[name] for r in rows]))
        ious = np.array([r["iou"] for r in rows])
        entry.update(
            {
                "iou_median": float(np.median(ious)),
                "iou_std": float(np.std(ious)),
                "share_iou_ge_0.65": float(np.mean(ious >= IOU_SUCCESS)),
                "n_images": len(rows),
                "n_failed": int(sum(bool(r.get("failed")) for r in rows)),
                "failure_kinds": failure_counts(rows),
            }
        )
        summary[method] = entry
    return summary


def choose_post_hoc(per_image: dict[str, dict], sources: list[str]) -> dict[str, dict]:
    """Per image ``{"chosen": metrics}`` of the source with the highest selection score among
    ``sources``: the pipeline's own rule (no ground truth), i.e. the ``final`` mask a run with
    ``final_sources = sources`` delivers, recomputed from a run's per-image metrics. An image where
    none of ``sources`` produced a mask counts as failed."""
    chosen = {}
    for image_id, rows in per_image.items():
        scored = [s for s in sources if rows.get(s, {}).get("selection_score") is not None]
        pick = max(scored, key=lambda s: rows[s]["selection_score"]) if scored else None
        chosen[image_id] = {"chosen": rows[pick] if pick else {**rows[sources[0]], "failed": True}}
    return chosen


def paired_difference(
    ious: dict[str, float],
    reference: dict[str, float],
    confidence: float = 0.95,
    n_resamples: int = 5000,
    seed: int = 0,
) -> dict[str, float]:
    """Mean per-image IoU difference ``ious - reference`` over the images both score, with a BCa
    bootstrap interval of that mean (``scipy.stats.bootstrap``; images resampled, so the pairing
    is kept). Returns ``{"diff", "low", "high", "n"}``."""
    from scipy.stats import bootstrap

    common = sorted(set(ious) & set(reference))
    diff = np.array([ious[i] - reference[i] for i in common], np.float64)
    if len(diff) < 2 or np.all(diff == diff[0]):
        value = float(diff.mean()) if len(diff) else float("nan")
        return {"diff": value, "low": value, "high": value, "n": len(diff)}
    result = bootstrap(
        (diff,),
        np.mean,
        confidence_level=confidence,
        n_resamples=n_resamples,
        method="BCa",
        random_state=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    return {"diff": float(diff.mean()), "low": float(low), "high": float(high), "n": len(diff)}


def row_per_image(per_image: dict[str, dict], source: str | list[str]) -> tuple[dict[str, dict], str]:
    """(per-image metrics, the key of the row in them) of one reported row: a source of a run, or
    a list of sources chosen post hoc by :func:`choose_post_hoc` (key ``"chosen"``)."""
    if isinstance(source, list):
        return choose_post_hoc(per_image, source), "chosen"
    return per_image, source


def row_ious(per_image: dict[str, dict], source: str | list[str]) -> dict[str, float]:
    """image id -> IoU of one reported row (see :func:`row_per_image`); a failed image's is 0."""
    rows, key = row_per_image(per_image, source)
    return {i: float(r[key]["iou"]) for i, r in rows.items() if "iou" in r.get(key, {})}


COVERAGES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)  # shares of the most confident images in risk-coverage


def risk_coverage(
    confidence: dict[str, float], ious: dict[str, float], coverages: tuple[float, ...] = COVERAGES
) -> dict[str, float]:
    """Mean IoU of the most confident ``c`` share of the images, for each ``c`` in ``coverages``
    (ties broken by id, so the result is reproducible). Keys ``"0.5"``, ... ``"1.0"``."""
    common = sorted(set(confidence) & set(ious), key=lambda i: (-confidence[i], i))
    out = {}
    for c in coverages:
        top = common[: max(1, int(round(c * len(common))))] if common else []
        out[f"{c:.1f}"] = float(np.mean([ious[i] for i in top])) if top else float("nan")
    return out


def auroc_fail(confidence: dict[str, float], ious: dict[str, float], fail_iou: float = FAIL_IOU) -> float:
    """Area under the ROC curve of ``1 - confidence`` for detecting failed images (IoU <
    ``fail_iou``); NaN when the images are all failures or all successes."""
    common = sorted(set(confidence) & set(ious))
    failed = np.array([ious[i] < fail_iou for i in common], bool)
    if failed.all() or not failed.any():
        return float("nan")
    return rank_auroc(failed, -np.array([confidence[i] for i in common], np.float64))


def rank_auroc(positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of ``score`` for the boolean (N,) ``positive`` labels, both classes present: the
    Mann-Whitney statistic, ties counted half (scikit-learn's ``roc_auc_score``, which a dataset
    run would otherwise import, about a second, for this one number; tests compare the two)."""
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    mid_ranks = np.cumsum(counts) - (counts - 1) / 2.0  # the 1-based mean rank of each distinct value
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((mid_ranks[inverse][positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def flag_summary(
    flagged: dict[str, bool], ious: dict[str, float] | None = None, fail_iou: float = FAIL_IOU
) -> dict[str, float]:
    """``n_flagged``, ``share_flagged`` and, with ``ious``, ``failures_flagged``: the share of the
    failed images (IoU < ``fail_iou``) that are flagged."""
    out: dict[str, float] = {
        "n_flagged": int(sum(flagged.values())),
        "share_flagged": float(np.mean(list(flagged.values()))) if flagged else 0.0,
    }
    if ious is not None:
        failed = [i for i in flagged if i in ious and ious[i] < fail_iou]
        out["n_failed_images"] = len(failed)
        out["failures_flagged"] = float(np.mean([flagged[i] for i in failed])) if failed else float("nan")
    return out
