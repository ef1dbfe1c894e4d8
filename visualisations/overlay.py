"""The per-image pictures: image, CAM with its prompts, mask against ground truth, candidate
spread (uncertainty). Each panel has its own ``draw_*`` function so that the segment overlays,
the web page (``cam_sam.serve.app``) and the demo notebook draw exactly the same thing. No backend is
forced here (a notebook keeps its inline one); :func:`panel_figure` draws off-screen, without pyplot,
so a server's worker threads may call it."""

from __future__ import annotations

import cv2
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

UNCERTAINTY_VMAX = 0.5  # the std of a 0/1 variable is at most 0.5: the colour scale's top
OVERLAY_DPI = 100  # the overlays' resolution: 1600 x 440 px with four panels, one screen wide (150 dpi took
# half as long again)
OVERLAY_PANEL_PX = 400  # an overlay panel is about 360 px wide at OVERLAY_DPI (16 in, 4 panels): larger maps
# are area-reduced to this longer side before drawing (matplotlib would subsample them)
OVERLAY_PNG_COMPRESSION = 1  # zlib level: a figure written sooner than at the default 6, in a larger file

# On a 1024 x 680 validation image an overlay took 0.56-0.65 s drawn and saved at full size and 150 dpi,
# 0.25-0.29 s with the three settings above (docs/experiments/sp-08); a run's student figure, three panels (no
# prompt panel), about 0.21 s (sp-10).


def reduce_for_display(array: np.ndarray | None, scale: float) -> np.ndarray | None:
    """``array`` (H, W) or (H, W, C) area-averaged by ``scale`` (< 1) for drawing; a bool mask stays
    a bool mask (pixels at least half covered). ``None`` passes through."""
    if array is None:
        return None
    h, w = array.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if array.dtype == bool:
        return cv2.resize(array.astype(np.float32), size, interpolation=cv2.INTER_AREA) >= 0.5
    if array.dtype == np.float16:  # OpenCV does not resize float16
        array = array.astype(np.float32)
    return cv2.resize(array, size, interpolation=cv2.INTER_AREA)


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


def draw_prompts(
    ax,
    boxes: np.ndarray | None,
    points: np.ndarray | None = None,
    point_labels: np.ndarray | None = None,
    color: str = "white",
) -> None:
    """``boxes``: (K, 4) xyxy, row 0 the main prompt (solid), the rest perturbed (dashed);
    ``points``: (N, 2) xy with ``point_labels`` (N,) 1 (positive, green) / 0 (negative, red)."""
    if boxes is not None and len(boxes):
        for box in boxes[1:]:
            _draw_box(ax, box, color, lw=0.6, ls="--")
        _draw_box(ax, boxes[0], color, lw=2)
    if points is not None and len(points):
        labels = np.ones(len(points)) if point_labels is None else point_labels
        ax.scatter(points[labels == 1, 0], points[labels == 1, 1], c="lime", s=14, marker="o", label="positive")
        ax.scatter(points[labels == 0, 0], points[labels == 0, 1], c="red", s=14, marker="x", label="negative")


def draw_mask(ax, image: np.ndarray, mask: np.ndarray | None, truth: np.ndarray | None = None) -> None:
    """The delivered ``mask`` (H, W) bool outlined in green (filled translucent) and the ground
    truth, when given, in red."""
    ax.imshow(image)
    if mask is not None and mask.any():
        ax.imshow(np.ma.masked_where(~mask, mask), cmap="summer", alpha=0.3, vmin=0, vmax=1)
        ax.contour(mask, levels=[0.5], colors="lime", linewidths=1.5)
    if truth is not None:
        ax.contour(truth, levels=[0.5], colors="red", linewidths=1.5)


def draw_uncertainty(ax, uncertainty: np.ndarray | None) -> None:
    """The (H, W) per-pixel uncertainty with its colour bar: the std of the masks that competed for
    the delivered one, or, when the student alone delivers, its Bernoulli std sqrt(p (1 - p))."""
    if uncertainty is None:
        return
    im = ax.imshow(uncertainty, cmap="magma", vmin=0, vmax=UNCERTAINTY_VMAX)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, label="std per pixel (competing masks, or the student's p)")


def panel_figure(draw, *args, title: str = "", size: tuple[float, float] = (5, 4.4)) -> Figure:
    """One panel: ``draw(ax, *args)`` on a fresh off-screen figure (no pyplot), without ticks."""
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    draw(ax, *args)
    ax.set_title(title)
    ax.axis("off")
    fig.tight_layout()
    return fig


def figure_to_array(fig: Figure) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a :func:`panel_figure`."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def cam_figure(image: np.ndarray, cam: np.ndarray, truth: np.ndarray | None, title: str) -> Figure:
    """One panel: the CAM over the image, with the lesion outline when known."""
    return panel_figure(draw_cam, image, cam, truth, title=title, size=(6, 5))


def overlay_titles(has_cam: bool, has_prompts: bool, has_truth: bool) -> tuple[str | None, str]:
    """The titles of the prompt panel and the mask panel, saying only what is drawn. With neither a
    CAM nor a prompt (the default: the student's own mask) there is no prompt panel (None), and a
    user's own images have no ground truth."""
    if has_cam:
        prompts = "CAM and prompts (box: solid; perturbed: dashed)" if has_prompts else "CAM"
    else:
        prompts = "prompts (box: solid; perturbed: dashed)" if has_prompts else None
    return prompts, "mask (green) vs ground truth (red)" if has_truth else "mask (green)"


def overlay_figure(
    image: np.ndarray,
    cam: np.ndarray | None,
    boxes: np.ndarray | None,
    points: np.ndarray | None,
    point_labels: np.ndarray | None,
    mask: np.ndarray | None,
    truth: np.ndarray | None,
    uncertainty: np.ndarray | None,
    title: str,
):
    """A row of panels: image | CAM and prompts (see :func:`draw_prompts`; left out when there is
    neither) | mask vs ground truth | uncertainty. All coordinates in image pixels; images larger
    than a panel are drawn reduced (:data:`OVERLAY_PANEL_PX`)."""
    scale = OVERLAY_PANEL_PX / max(image.shape[:2])
    if scale < 1:
        image, cam, mask, truth, uncertainty = (
            reduce_for_display(a, scale) for a in (image, cam, mask, truth, uncertainty)
        )
        boxes = None if boxes is None else np.asarray(boxes, np.float64) * scale
        points = None if points is None else np.asarray(points, np.float64) * scale
    prompt_title, mask_title = overlay_titles(
        cam is not None, boxes is not None or points is not None, truth is not None
    )
    n_panels = 3 if prompt_title is None else 4
    fig, axes = plt.subplots(1, n_panels, figsize=(4 * n_panels, 4.4))
    axes[0].imshow(image)
    axes[0].set_title("image")
    if prompt_title is not None:
        draw_cam(axes[1], image, cam)
        draw_prompts(axes[1], boxes, points, point_labels)
        axes[1].set_title(prompt_title)
    draw_mask(axes[-2], image, mask, truth)
    axes[-2].set_title(mask_title)
    draw_uncertainty(axes[-1], uncertainty)
    axes[-1].set_title("uncertainty")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def draw_labels(
    ax, tinted: np.ndarray, legend: dict[str, tuple[int, int, int]], truth: np.ndarray | None = None
) -> None:
    """A label map already tinted over its image (one colour per class: the multi-class run's
    ``cam_sam.multiclass.colour_labels``), a legend of ``{class name: RGB colour}``, and the
    ground-truth outline, when given, in white."""
    from matplotlib.patches import Patch

    ax.imshow(tinted)
    if truth is not None:
        ax.contour(truth, levels=[0.5], colors="white", linewidths=1.2)
    handles = [Patch(color=np.asarray(colour) / 255, label=name) for name, colour in legend.items()]
    ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.7)


def labels_figure(
    tinted: np.ndarray, legend: dict[str, tuple[int, int, int]], truth: np.ndarray | None, title: str
) -> Figure:
    """One panel: the tinted label map with its legend (:func:`draw_labels`)."""
    return panel_figure(draw_labels, tinted, legend, truth, title=title, size=(6, 5))
