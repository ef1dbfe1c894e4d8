"""CAM quality against lesion masks (evaluation only; never used to make a prediction).

All maps are (H, W) on the original image frame; masks are (H, W) bool.
"""

from __future__ import annotations

import numpy as np

from common.geometry import mask_to_box, peak_region

DEFAULT_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def pointing_game(cam: np.ndarray, mask: np.ndarray) -> bool:
    """Is the CAM's peak (first maximum in row-major order) inside the lesion?"""
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    return bool(mask[y, x])


def energy_pointing_game(cam: np.ndarray, mask: np.ndarray) -> float:
    """Share of the CAM's mass inside the lesion (0 for an all-zero map)."""
    total = float(cam.sum())
    return float(cam[mask].sum()) / total if total > 0 else 0.0


def region_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


def box_iou(a: np.ndarray | None, b: np.ndarray | None) -> float:
    """IoU of two inclusive (x0, y0, x1, y1) pixel boxes; 0 when either is missing."""
    if a is None or b is None:
        return 0.0
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
    inter = ix * iy
    area = lambda r: (r[2] - r[0] + 1) * (r[3] - r[1] + 1)  # noqa: E731
    return float(inter / (area(a) + area(b) - inter))


def cam_quality(cam: np.ndarray, mask: np.ndarray, thresholds=DEFAULT_THRESHOLDS) -> dict[str, float]:
    """Pointing game, energy pointing game, IoU of the CAM region (``cam >= t * max``, all
    components) at each threshold, and IoU of the box of its largest component at 0.5 with the
    lesion's box."""
    result = {"pointing_game": float(pointing_game(cam, mask)), "energy_pointing_game": energy_pointing_game(cam, mask)}
    for t in thresholds:
        result[f"iou@{t:g}"] = region_iou(peak_region(cam, t, keep_largest=False), mask)
    result["box_iou@0.5"] = box_iou(mask_to_box(peak_region(cam, 0.5)), mask_to_box(mask))
    return result


def quality_rows(records: dict[str, dict]) -> list[dict]:
    """Flatten ``generate_cams`` records (image id -> ``{"quality": {"model/method": values}}`` or
    ``{"error": message}``) into one row per (image, model, method). An image that failed gets, for
    every model x method the other images have, a row whose localisation scores are 0 (``failed``
    1), so it stays in their means; its ROAD and flat-map flag stay undefined (NaN)."""
    rows, failed = [], []
    for image_id, record in records.items():
        if record.get("error"):
            failed.append(image_id)
        for key, values in record.get("quality", {}).items():
            model, method = key.split("/", 1)
            rows.append({"image_id": image_id, "model": model, "method": method, **values, "failed": 0.0})
    pairs = list(dict.fromkeys((r["model"], r["method"]) for r in rows))
    scores = sorted(
        {k for r in rows for k in r if k not in ("image_id", "model", "method", "failed", "constant", "road")}
    )
    for image_id in failed:
        for model, method in pairs:
            rows.append(
                {"image_id": image_id, "model": model, "method": method, **dict.fromkeys(scores, 0.0), "failed": 1.0}
            )
    return rows
