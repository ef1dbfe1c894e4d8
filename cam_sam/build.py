"""Building the pipeline and opening data from a script's CONFIG dict: the one place every
script (segment, benchmark, baselines, pseudo-labelling) turns settings into library objects."""
from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cam_sam.depth import DepthCheck
from cam_sam.pipeline import SEGMENTER_SOURCES, CamSamPipeline, PipelineConfig, PostprocessConfig, PromptConfig
from cam_sam.proposals import ColourProposalConfig
from cam_sam.student_runtime import use_student_backend

from data.catalogue import Dataset, open_dataset
from data.synthetic import write_synthetic_isic
from explainers.cams import DEFAULT_ENSEMBLE, CamExplainer
from medsam.base import PromptableSegmenter
from medsam.factory import create_segmenter
from models.registry import create_classifier
from models.student import StudentSegmenter

log = logging.getLogger(__name__)

# Where the images come from (ISIC 2017, or a folder of the user's images).
DATA_CONFIG: dict[str, Any] = {
    "dataset": "isic2017",                   # isic2017, isic2016, isic2018, ph2, ham10000, derm7pt (data.layouts)
    "data_root": "../shared/data/ISIC2017",  # the dataset's official unzip layout (ISIC 2017: or train/ val/ test/)
    "split": "val",                          # train, val or test ("all" for ph2 and ham10000; derm7pt:
                                             # train, valid, test, all)
    "derm7pt_image": "derm",                 # derm7pt: "derm" (dermoscopic) or "clinic" photographs
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
# benchmark, baselines, pseudo-labelling); each script spreads them into its CONFIG. The groups
# "prompts", "colour" and "postprocess" are the fields of PromptConfig, ColourProposalConfig and
# PostprocessConfig (documented there), taken from those dataclasses' own defaults.
PIPELINE_CONFIG: dict[str, Any] = {
    # classifier and CAMs
    "classifier": "efficientnet_lite0",      # models/ registry name
    "classifier_checkpoint": None,           # a file from classification/train.py; None: ImageNet weights
    "target_class": None,                    # ImageNet head: None = top-1 class
    "binary_target": "melanoma",             # single-logit head: "melanoma" logit or "predicted" side
    "cam_batch_size": 32,                    # ScoreCAM / AblationCAM forward passes per batch
    "ensemble_methods": list(DEFAULT_ENSEMBLE),   # members of the "ensemble" CAM method ("gradcam@stage5": another layer)
    "cam_dir": None,                         # reuse saved heatmaps: <cams run>/heatmaps/<model label>
    # segmenter
    "segmenter": "litemedsam",               # litemedsam, medsam, sam_vit_b, sam_vit_l, sam_vit_h
    "segmenter_checkpoint": None,            # needed for medsam and sam_*
    "decode_batch_size": 16,
    "backend": "auto",                       # encoder + box decoder: torch, onnxruntime, openvino; auto: fastest
                                             # installed on CPU (openvino), torch on GPU (medsam/runtime.py)
    "export_dir": "results/cache/onnx",      # the ONNX exports of the segmenter, made once from its weights
    "embedding_cache": None,                 # a folder: store/reuse image embeddings (same masks, no re-encoding)
    # the self-trained student (self_training/): sources "student" and "student_box"
    "student_checkpoint": "model_checkpoints/student_r4fe.pt",    # a student.pt of self_training.train_student
                                             # (round 4 on whole frames, its encoder the fine-tuned three-class
                                             # classifier's: the best segmenter on both evaluation sets,
                                             # docs/self_training.md; None: no student sources)
    "student_tta": True,                     # average the student over flips (models.student.TTA_FLIPS)
    "student_backend": "auto",               # the student's network: torch, onnxruntime, openvino; auto: as
                                             # "backend" (cam_sam/student_runtime.py; exported into export_dir)
    # sources, selection and every group of settings: PipelineConfig's fields, one to one
    **asdict(PipelineConfig()),
    "device": "auto",
}
# Pipeline keys that may change when a run resumes: they change speed, never a result.
PIPELINE_RESUMABLE = frozenset({"device", "decode_batch_size", "cam_batch_size", "embedding_cache", "export_dir"})


def pipeline_config(cfg: dict[str, Any]) -> PipelineConfig:
    """The typed pipeline settings from a script's CONFIG (its :class:`PipelineConfig` keys)."""
    fields = {k: cfg[k] for k in PipelineConfig.__dataclass_fields__}
    return PipelineConfig(**{**fields, "prompts": PromptConfig(**fields["prompts"]),
                             "colour": ColourProposalConfig(**fields["colour"]),
                             "postprocess": PostprocessConfig(**fields["postprocess"])})


def build_explainer(cfg: dict[str, Any], device: str) -> CamExplainer:
    """The classifier (``classifier``, ``classifier_checkpoint``) and its CAM explainer."""
    classifier = create_classifier(cfg["classifier"], checkpoint=cfg["classifier_checkpoint"])
    return CamExplainer(classifier, cfg["classifier"], cfg["target_class"], cfg["cam_batch_size"], device,
                        binary_target=cfg["binary_target"], ensemble_methods=cfg["ensemble_methods"])


def build_segmenter(cfg: dict[str, Any], device: str) -> PromptableSegmenter:
    """The promptable segmenter (``segmenter``, ``segmenter_checkpoint``) on its ``backend``, with
    the embedding cache."""
    segmenter = create_segmenter(cfg["segmenter"], cfg["segmenter_checkpoint"], device, cfg["decode_batch_size"])
    segmenter.use_backend(cfg["backend"], cfg["export_dir"])
    segmenter.use_cache(cfg.get("embedding_cache"), f"{cfg['segmenter']}|{cfg['segmenter_checkpoint']}")
    return segmenter


def needs_segmenter(cfg: dict[str, Any]) -> bool:
    return bool(cfg["methods"]) or any(p in SEGMENTER_SOURCES for p in cfg["proposals"])


def unused_settings(cfg: dict[str, Any]) -> list[str]:
    """One line per model file the user set (it differs from :data:`PIPELINE_CONFIG`'s default)
    that this configuration will never open, naming the setting that makes it unused."""
    def user_set(key: str) -> bool:
        return cfg.get(key) is not None and cfg.get(key) != PIPELINE_CONFIG[key]

    lines = []
    if user_set("classifier_checkpoint") and not cfg["methods"] and not cfg.get("multiclass"):
        lines.append(f"classifier_checkpoint={cfg['classifier_checkpoint']} is not used: no CAM method runs "
                     "(methods=[]) and multiclass is off; add one, e.g. --set methods='[\"gradcam\"]', or drop classifier_checkpoint")
    if (user_set("segmenter_checkpoint") or user_set("segmenter")) and not needs_segmenter(cfg):
        lines.append(f"segmenter={cfg['segmenter']} / segmenter_checkpoint={cfg['segmenter_checkpoint']} is not used: "
                     f"no source of this run prompts a segmenter (methods={cfg['methods']}, proposals={cfg['proposals']})")
    if user_set("student_checkpoint") and not pipeline_config(cfg).needs_student:
        lines.append(f"student_checkpoint={cfg['student_checkpoint']} is not used: no student source runs "
                     f"(proposals={cfg['proposals']}, student_weight={cfg['student_weight']}); add \"student\" to proposals")
    return lines


def build_pipeline(cfg: dict[str, Any], device: str, explainer: CamExplainer | None = None,
                   segmenter: PromptableSegmenter | None = None, refuse_unused: bool = True) -> CamSamPipeline:
    """Classifier and explainer (only when CAM methods are asked for), segmenter and pipeline.
    ``explainer`` / ``segmenter``: already built ones to share (an app serving many requests).
    ``refuse_unused``: a model file the user set that this configuration never opens ends the run
    with one line naming both settings (:func:`unused_settings`): running on would let them believe
    it shaped the result."""
    problems = unused_settings(cfg) if refuse_unused else []
    if problems:
        raise SystemExit("; ".join(problems))
    if cfg["methods"] and explainer is None:
        explainer = build_explainer(cfg, device)
    if needs_segmenter(cfg) and segmenter is None:
        segmenter = build_segmenter(cfg, device)
    student, depth = None, None
    if cfg["student_checkpoint"]:
        student = StudentSegmenter.from_checkpoint(cfg["student_checkpoint"], device, cfg["student_tta"])
        use_student_backend(student, cfg["student_backend"], cfg["export_dir"], device)
        depth = load_depth_check(cfg["student_checkpoint"])
    return CamSamPipeline(explainer if cfg["methods"] else None, segmenter if needs_segmenter(cfg) else None,
                          pipeline_config(cfg), student, depth)


def depth_path(student_checkpoint: str | Path) -> Path:
    """Where a student's depth statistics ship: ``<checkpoint without .pt>.depth.npz`` beside it."""
    path = Path(student_checkpoint)
    return path.with_name(path.stem + ".depth.npz")


def load_depth_check(student_checkpoint: str | Path) -> DepthCheck | None:
    """The student's :class:`~cam_sam.depth.DepthCheck` (None, said once in the log, when it has none:
    its masks then get no out-of-depth verdict)."""
    path = depth_path(student_checkpoint)
    if not path.is_file():
        log.info("no depth statistics %s beside the student: no out-of-depth check", path)
        return None
    try:
        return DepthCheck.load(path)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc


def open_data(cfg: dict[str, Any], read_masks: bool = True) -> tuple[Dataset, bool]:
    """(the dataset to segment, whether it is synthetic): generated synthetic images when no data
    is on the machine and ``synthetic_if_missing``. ``read_masks=False``: no mask file is ever opened."""
    if cfg["image_dir"] or Path(cfg["data_root"]).is_dir() or not cfg["synthetic_if_missing"]:
        return open_dataset(cfg["data_root"], cfg["split"], cfg["image_dir"], cfg["mask_dir"], read_masks,
                            cfg["dataset"], cfg["derm7pt_image"]), False
    root = Path(cfg["results_root"]) / "synthetic_isic2017"
    log.warning("no ISIC data at %s: segmenting %d SYNTHETIC images written to %s instead. "
                "Point data_root at your ISIC 2017 download for real results.",
                cfg["data_root"], cfg["n_synthetic"], root)
    write_synthetic_isic(root, cfg["n_synthetic"], cfg["split"], seed=cfg["seed"])
    return open_dataset(root, cfg["split"], read_masks=read_masks), True
