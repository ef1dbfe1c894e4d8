"""The per-image overlay figure: image, CAM with its prompts, mask against ground truth,
candidate spread (uncertainty)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _draw_box(ax, box, color, lw=1.5, ls="-"):
    x0, y0, x1, y1 = box
    ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, lw=lw, ls=ls))


def draw_cam(ax, image: np.ndarray, cam: np.ndarray | None, truth: np.ndarray | None = None) -> None:
    """``image`` with ``cam`` (H, W, values 0..1) as a translucent jet map and, when given, the
    ground-truth outline in white."""
    ax.imshow(image)
    if cam is not None:
        ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    if truth is not None:
        ax.contour(truth, levels=[0.5], colors="white", linewidths=1.5)


def cam_figure(image: np.ndarray, cam: np.ndarray, truth: np.ndarray | None, title: str):
    """One panel: the CAM over the image, with the lesion outline when known."""
    fig, ax = plt.subplots(figsize=(6, 5))
    draw_cam(ax, image, cam, truth)
    ax.set_title(title)
    ax.axis("off")
    return fig


def overlay_figure(image: np.ndarray, cam: np.ndarray | None, boxes: np.ndarray | None,
                   points: np.ndarray | None, point_labels: np.ndarray | None, mask: np.ndarray | None,
                   truth: np.ndarray | None, uncertainty: np.ndarray | None, title: str):
    """A 1x4 figure. ``boxes``: (K, 4) xyxy, row 0 the main prompt (solid), the rest perturbed
    (dashed); ``points``: (N, 2) xy with ``point_labels`` (N,) 1/0. All in image pixels."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4))
    axes[0].imshow(image)
    axes[0].set_title("image")
    draw_cam(axes[1], image, cam)
    if boxes is not None and len(boxes):
        for box in boxes[1:]:
            _draw_box(axes[1], box, "white", lw=0.6, ls="--")
        _draw_box(axes[1], boxes[0], "white", lw=2)
    if points is not None and len(points):
        labels = np.ones(len(points)) if point_labels is None else point_labels
        axes[1].scatter(points[labels == 1, 0], points[labels == 1, 1], c="lime", s=14, marker="o", label="positive")
        axes[1].scatter(points[labels == 0, 0], points[labels == 0, 1], c="red", s=14, marker="x", label="negative")
    axes[1].set_title("CAM and prompts (box: solid; perturbed: dashed)")
    axes[2].imshow(image)
    if truth is not None:
        axes[2].contour(truth, levels=[0.5], colors="red", linewidths=1.5)
    if mask is not None:
        axes[2].contour(mask, levels=[0.5], colors="lime", linewidths=1.5)
    axes[2].set_title("mask (green) vs ground truth (red)")
    if uncertainty is not None:
        im = axes[3].imshow(uncertainty, cmap="magma", vmin=0, vmax=0.5)
        fig.colorbar(im, ax=axes[3], fraction=0.046, label="std of candidate masks")
    axes[3].set_title("uncertainty")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig
