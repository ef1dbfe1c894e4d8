"""How much to trust a pseudo-mask, from the teacher pipeline's own outputs (never the ground truth).

Pseudo-labelling (:mod:`self_training.labelling`) records it to weight or drop pseudo-masks: a
mask chosen with a high selection score, found by most candidates, with little spread among the
candidate masks is more often right.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cam_sam.pipeline import ImageOutput, agreement


def mask_confidence(output: ImageOutput) -> dict[str, Any]:
    """Label-free confidence of ``output.final_mask``:

    * ``selection_score``: the chosen candidate's selection score (predicted IoU + weighted agreement);
    * ``pred_iou``: the segmenter's predicted IoU of the chosen candidate;
    * ``agreement``: mean IoU of the chosen candidate with the other candidates of its source
      (1.0 when it is the only one);
    * ``spread``: mean per-pixel std of all candidate masks over their union (0: all identical);
    * ``area``: the delivered mask's share of the image; ``n_candidates``.

    Empty dict when there is no mask, or no source's own (a fallback for an empty student)."""
    if output.final_mask is None or not any(o.chosen is not None for o in output.sources.values()):
        return {}  # no mask, or no source's own (a fallback for an empty student)
    # a voted mask (final_rule "vote") is described by its best-scored voter
    name = (
        output.final_source
        if output.final_source in output.sources
        else max(
            (s for s, o in output.sources.items() if o.chosen is not None),
            key=lambda s: output.sources[s].selection_score,
        )
    )
    source = output.sources[name]
    masks = source.candidates.masks
    agree = agreement(masks)[source.chosen] if len(masks) > 1 else 1.0
    spread = 0.0
    if output.uncertainty is not None:
        union = np.zeros(output.uncertainty.shape, bool)
        for out in output.sources.values():
            if out.candidates is not None:
                union |= out.candidates.masks.any(axis=0)
        spread = float(output.uncertainty[union].mean()) if union.any() else 0.0
    return {
        "selection_score": source.selection_score,
        "pred_iou": source.score,
        "agreement": float(agree),
        "spread": spread,
        "area": float(output.final_mask.mean()),
        "n_candidates": int(len(masks)),
    }
