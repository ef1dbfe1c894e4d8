"""Building the pipeline and opening data from a script's flat CONFIG dict: the one place every
script (segment, benchmark, baselines, pseudo-labelling) turns settings into library objects."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from cam_sam.pipeline import SEGMENTER_SOURCES, CamSamPipeline, PipelineConfig, PostprocessConfig, PromptConfig
from cam_sam.proposals import ColourProposalConfig
from data.isic import ISICDataset, ImageFolderDataset, open_dataset
from data.synthetic import write_synthetic_isic
from explainers.cams import CamExplainer
from medsam.factory import create_segmenter
from models.registry import create_classifier
from models.student import StudentSegmenter

log = logging.getLogger(__name__)

# Where the images come from (ISIC 2017, or a folder of the user's images).
DATA_CONFIG: dict[str, Any] = {
    "data_root": "../shared/data/ISIC2017",  # ISIC 2017 official unzip layout (or train/ val/ test/)
    "split": "val",                          # train, val or test
    "image_dir": None,                       # a folder of your own images instead of ISIC
    "mask_dir": None,                        # optional masks for image_dir (<stem>_segmentation.png)
    "every": 1,                              # every k-th image only (a spread-out subset)
    "limit": None,                           # at most N images (after "every")
    "synthetic_if_missing": True,            # no data_root: segment generated (synthetic) images
    "n_synthetic": 4,
}

# Where a run writes.
OUTPUT_CONFIG: dict[str, Any] = {
    "results_root": "results",
    "out_dir": None,                         # None: a new results/<script>_<time>; a path: resume there
}

# The settings of the zero-shot pipeline, shared by every script that builds one (segment,
# benchmark, baselines, pseudo-labelling); each script spreads them into its CONFIG.
PIPELINE_CONFIG: dict[str, Any] = {
    # classifier and CAMs
    "classifier": "efficientnet_lite0",      # models/ registry name
    "classifier_checkpoint": None,           # a file from classification/train.py; None: ImageNet weights
    "target_class": None,                    # ImageNet head: None = top-1 class
    "binary_target": "melanoma",             # single-logit head: "melanoma" logit or "predicted" side
    "methods": ["gradcam"],                  # grad-cam methods (explainers.CAM_METHODS); [] for none
    "cam_batch_size": 32,                    # ScoreCAM / AblationCAM forward passes per batch
    "cam_dir": None,                         # reuse saved heatmaps: <cams run>/heatmaps/<model label>
    # segmenter
    "segmenter": "litemedsam",               # litemedsam, medsam, sam_vit_b, sam_vit_l, sam_vit_h
    "segmenter_checkpoint": None,            # needed for medsam and sam_*
    "decode_batch_size": 16,
    "embedding_cache": None,                 # a folder: store/reuse image embeddings (same masks, no re-encoding)
    # prompts (fractions of the box or of the CAM peak)
    "box_threshold": 0.5,
    "box_padding": 0.1,
    "n_perturbations": 10,
    "perturb_scale": 0.05,
    "n_points": 0,
    "point_power": 30.0,
    "n_negative_points": 0,
    "negative_max_cam": 0.1,
    # colour lesion proposals (cam_sam/proposals.py) and the choice of the delivered mask
    "proposals": ["colour"],                 # [] for CAM prompts only
    "final_sources": ["colour"],             # sources whose best-scored mask competes for "final"
    "agreement_weight": 0.1,                 # selection = predicted IoU + w * agreement with the other candidates
    # the self-trained student (self_training/): sources "student", "student_box" in proposals
    "student_checkpoint": None,              # a student.pt of self_training.train_student
    "student_weight": 0.0,                   # selection += w * IoU(candidate, student mask)
    "student_box_padding": 0.05,             # student_box: padding, a fraction of the box
    "colour_flatfield_sigmas": [0.0, 0.25, 0.5],
    "colour_channels": ["lightness", "blue"],
    "colour_padding": 0.1,
    "colour_centre_sigma": 0.25,
    "colour_min_area": 0.002,
    "colour_max_chroma": 60.0,
    "colour_remove_artefacts": True,
    # post-processing (kernel sizes as fractions of the shorter image side)
    "open_frac": 0.0,
    "close_frac": 0.0,
    "keep_largest": True,
    "fill_holes": True,
    "device": "auto",
    "seed": 0,
}
# Pipeline keys that may change when a run resumes: they change speed, never a result.
PIPELINE_RESUMABLE = frozenset({"device", "decode_batch_size", "cam_batch_size", "embedding_cache"})


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``; any other name unchanged."""
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def pipeline_config(cfg: dict[str, Any]) -> PipelineConfig:
    """The typed pipeline settings from a script's flat CONFIG (``colour_<field>`` keys for the
    colour proposals)."""
    colour_keys = [k for k in ColourProposalConfig.__dataclass_fields__ if f"colour_{k}" in cfg]
    return PipelineConfig(methods=list(cfg["methods"]), proposals=list(cfg["proposals"]),
                          final_sources=list(cfg["final_sources"]), agreement_weight=float(cfg["agreement_weight"]),
                          prompts=PromptConfig(**{k: cfg[k] for k in PromptConfig.__dataclass_fields__}),
                          colour=ColourProposalConfig(**{k: cfg[f"colour_{k}"] for k in colour_keys}),
                          postprocess=PostprocessConfig(**{k: cfg[k] for k in PostprocessConfig.__dataclass_fields__}),
                          student_weight=float(cfg["student_weight"]),
                          student_box_padding=float(cfg["student_box_padding"]), seed=int(cfg["seed"]))


def build_pipeline(cfg: dict[str, Any], device: str) -> CamSamPipeline:
    """Classifier and explainer (only when CAM methods are asked for), segmenter and pipeline."""
    explainer = None
    if cfg["methods"]:
        classifier = create_classifier(cfg["classifier"], checkpoint=cfg["classifier_checkpoint"])
        explainer = CamExplainer(classifier, cfg["classifier"], cfg["target_class"], cfg["cam_batch_size"], device,
                                 binary_target=cfg["binary_target"])
    segmenter = None
    if cfg["methods"] or any(p in SEGMENTER_SOURCES for p in cfg["proposals"]):
        segmenter = create_segmenter(cfg["segmenter"], cfg["segmenter_checkpoint"], device, cfg["decode_batch_size"])
        segmenter.use_cache(cfg.get("embedding_cache"), f"{cfg['segmenter']}|{cfg['segmenter_checkpoint']}")
    student = StudentSegmenter.from_checkpoint(cfg["student_checkpoint"], device) if cfg["student_checkpoint"] else None
    return CamSamPipeline(explainer, segmenter, pipeline_config(cfg), student)


def open_data(cfg: dict[str, Any], read_masks: bool = True) -> tuple[ISICDataset | ImageFolderDataset, bool]:
    """(the dataset to segment, whether it is synthetic): generated synthetic images when no data
    is on the machine and ``synthetic_if_missing``. ``read_masks=False``: no mask file is ever opened."""
    if cfg["image_dir"] or Path(cfg["data_root"]).is_dir() or not cfg["synthetic_if_missing"]:
        return open_dataset(cfg["data_root"], cfg["split"], cfg["image_dir"], cfg["mask_dir"], read_masks), False
    root = Path(cfg["results_root"]) / "synthetic_isic2017"
    log.warning("no ISIC data at %s: segmenting %d SYNTHETIC images written to %s instead. "
                "Point data_root at your ISIC 2017 download for real results.",
                cfg["data_root"], cfg["n_synthetic"], root)
    write_synthetic_isic(root, cfg["n_synthetic"], cfg["split"], seed=cfg["seed"])
    return open_dataset(root, cfg["split"], read_masks=read_masks), True
