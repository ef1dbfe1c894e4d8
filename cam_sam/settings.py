"""The one schema of the settings a dataset run reads: every CONFIG key with its default and its
documentation, the named presets, the shipped checkpoints they name, and the typed settings a
script resolves its CONFIG into at its top (:func:`resolve_run`, :class:`DataSettings`,
:class:`ModelSettings`, :func:`pipeline_config`): the library takes those, never the dict.

- :data:`DATA_CONFIG`: where the images come from; :data:`OUTPUT_CONFIG`: where a run writes;
- :data:`PIPELINE_CONFIG`: the pipeline (classifier, CAMs, segmenter, student, sources, selection,
  post-processing; the groups are :class:`~cam_sam.pipeline.PipelineConfig`'s fields);
- :data:`SEGMENT_CONFIG`: everything ``cam_sam.segment`` reads; :data:`PRESETS`: named groups of
  settings (``--set preset=NAME``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from cam_sam.pipeline import PipelineConfig, PostprocessConfig, PromptConfig
from cam_sam.proposals import ColourProposalConfig
from common.defaults import DATA_ROOT, RESULTS_ROOT
from explainers.methods import DEFAULT_ENSEMBLE

# Where the images come from (ISIC 2017, or a folder of the user's images).
# fmt: off
DATA_CONFIG: dict[str, Any] = {
    "dataset": "isic2017",                   # isic2017, isic2016, isic2018, ph2, ham10000, derm7pt (data.layouts)
    "data_root": DATA_ROOT,                  # the dataset's official unzip layout (ISIC 2017: or train/ val/ test/)
    "split": "val",                          # train, val or test ("all" for ph2 and ham10000; derm7pt:
                                             # train, valid, test, all)
    "derm7pt_image": "derm",                 # derm7pt: "derm" (dermoscopic) or "clinic" photographs
    "image_dir": None,                       # a folder of your own images instead of ISIC
    "mask_dir": None,                        # optional masks for image_dir (<stem>_segmentation.png)
    "every": 1,                              # every k-th image only (a spread-out subset)
    "limit": None,                           # at most N images (after "every")
    "synthetic_if_missing": True,            # no data_root: segment generated (synthetic) images
    "n_synthetic": 4,
    "max_side": 1024,                        # px: an image of at least twice this longer side is decoded at
                                             # 1/2, 1/4 or 1/8 (a JPEG inside its decoder; longer side then
                                             # 1024-2047), segmented at that size, and its mask brought back to
                                             # the image's size at the end (data.isic.working_shape); the
                                             # development sets (<= 1024 px) are never reduced. 0: full size
}

# Where a run writes.
OUTPUT_CONFIG: dict[str, Any] = {
    "results_root": RESULTS_ROOT,
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
    "ensemble_methods": list(DEFAULT_ENSEMBLE),   # members of the "ensemble" CAM method ("gradcam@stage5":
                                             # another layer)
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
    "student_checkpoint": "model_checkpoints/student_soup3h_sog.pt",  # a student.pt of self_training.train_student
                                             # (model_checkpoints/README.md; None: no student sources); its
                                             # trust sidecar <stem>.trust.json gives its verdicts (self_training.ship)
    "student_tta": True,                     # average the student over flips (models.student.TTA_FLIPS)
    "student_backend": "auto",               # the student's network: torch, onnxruntime, openvino; auto: as
                                             # "backend" (models/student_runtime.py; exported into export_dir)
    # sources, selection and every group of settings: PipelineConfig's fields, one to one
    **asdict(PipelineConfig()),
    "device": "auto",
}
# Pipeline keys that may change when a run resumes: they change speed, never a result.
PIPELINE_RESUMABLE = frozenset({"device", "decode_batch_size", "cam_batch_size", "embedding_cache", "export_dir"})

# Everything ``segment_dataset`` reads: data, outputs, the pipeline, evaluation.
SEGMENT_CONFIG: dict[str, Any] = {
    "preset": None,                          # a named group of settings from PRESETS, e.g. "arbiter", "paper"
    **DATA_CONFIG,
    **OUTPUT_CONFIG,
    "n_overlays": 10,                        # overlay figures for the first N images (and up to N flagged
                                             # ones, per worker process)
    "workers": "auto",                       # processes sharing the images (each every N-th image, same
                                             # records); "auto": on a CPU one per core (at most
                                             # runs.dataset.AUTO_WORKERS_MAX), fewer for a short run; 1 on a GPU
    "save_uncertainty": True,                # per-image std of the candidates, uncertainty/<id>.png (8-bit, std x 510)
    **PIPELINE_CONFIG,
    "oracle": True,                          # also report ground-truth-chosen upper bounds, labelled oracle_*
    # multi-class (cam_sam.multiclass): the classifier (classifier_checkpoint, three classes) names
    # each lesion's class; labels/<id>.png and summary["multiclass"]
    "multiclass": False,
}
SEGMENT_RESUMABLE = PIPELINE_RESUMABLE | {"limit", "n_overlays", "workers"}

MULTICLASS_CHECKPOINT = "model_checkpoints/classifier_3class.pt"   # the shipped three-class Lite0
STUDENT_CHECKPOINT = PIPELINE_CONFIG["student_checkpoint"]          # the default's student
ARBITER_STUDENT_CHECKPOINT = "model_checkpoints/student_r3and.pt"   # the arbiter's partner (round 3-AND)

# The default configuration spelled out (PipelineConfig's and PIPELINE_CONFIG's defaults).
STUDENT_PRESET: dict[str, Any] = {
    "methods": [], "proposals": ["student"], "final_sources": ["student"], "final_rule": "select",
    "student_checkpoint": STUDENT_CHECKPOINT, "zoom_stability": True}

# Named configurations; ``--set preset=NAME`` applies one, other --set values apply on top. A preset
# run with a student takes its review threshold, expected IoU and depth check from that student's
# trust sidecar (cam_sam.runs.student_trust: the entry named like the preset, "student" for the default).
PRESETS: dict[str, dict[str, Any]] = {
    # The paper's protocol as the paper describes it (not as its code does): box from the CAM
    # thresholded at 0.5 with 10 % padding, 10 points sampled from CAM**30, 10 perturbed prompts
    # (5 % of the box), morphological opening and closing. Honest rows: each method's mask chosen
    # by predicted IoU, and "final" = best CAM method per image by predicted IoU. The paper's
    # ground-truth choices are the oracle_<method> and oracle_final rows.
    "paper": {"methods": ["gradcam", "gradcam++", "eigencam"], "proposals": [], "agreement_weight": 0.0,
              "final_sources": ["gradcam", "gradcam++", "eigencam"], "final_rule": "select",
              "prompts": {"box_threshold": 0.5, "box_padding": 0.1, "n_points": 10, "point_power": 30.0,
                          "n_perturbations": 10, "perturb_scale": 0.05},
              "postprocess": {"open_frac": 0.01, "close_frac": 0.01}},
    # The self-trained student alone (self_training/): no CAM, no segmenter encoding. The weight-space
    # mean of round 4's student and two fine-tunes, its input given half a Shades of Gray correction:
    # the best segmenter on both evaluation sets (docs/results.md). It is the default; the
    # preset pins it by name.
    "student": STUDENT_PRESET,
    # The same masks at the least cost: the confidence goes without the student's zoom-out pass (it
    # ranks failures a little less well: docs/results.md).
    "fast": {**STUDENT_PRESET, "zoom_stability": False},
    # One pass of the student and nothing else: no flips (so no flip agreement), no zoomed-out
    # pass: its confidence is the student's own score and the colour contrast. For throughput
    # (docs/results.md); its masks are not the default's.
    "realtime": {**STUDENT_PRESET, "zoom_stability": False, "student_tta": False},
    # The route through the segmenter: the arbiter of cam_sam.trust among
    # the teacher (colour proposals -> LiteMedSAM), the round 3-AND student (its best partner,
    # docs/experiments/tr-01) and the student's box decoded by LiteMedSAM. The page's segmenter choices run it.
    "arbiter": {"methods": [], "proposals": ["colour", "student", "student_box", "colour_region"],
                "final_sources": ["colour", "student", "student_box"], "final_rule": "arbiter",
                "student_checkpoint": ARBITER_STUDENT_CHECKPOINT},
    # The default mask, labelled with the lesion's class by the shipped three-class classifier
    # (model_checkpoints/README.md): labels/<id>.png, summary["multiclass"].
    "multiclass": {"multiclass": True, "classifier_checkpoint": MULTICLASS_CHECKPOINT},
    # The zero-shot colour pipeline alone: colour proposals -> LiteMedSAM.
    "zero_shot": {"methods": [], "proposals": ["colour"], "final_sources": ["colour"], "final_rule": "select",
                  "student_checkpoint": None},
}
# fmt: on


def _pick(cls, cfg: dict[str, Any], defaults: dict[str, Any]):
    """``cls`` from the keys of ``cfg`` named like its fields (missing ones: ``defaults``)."""
    return cls(**{f.name: cfg[f.name] if f.name in cfg else defaults[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class DataSettings:
    """Where the images come from (:data:`DATA_CONFIG`'s keys, documented there), plus where a
    generated stand-in goes (``results_root``) and its ``seed``."""

    dataset: str
    data_root: str
    split: str
    derm7pt_image: str
    image_dir: str | None
    mask_dir: str | None
    every: int
    limit: int | None
    synthetic_if_missing: bool
    n_synthetic: int
    max_side: int | None = DATA_CONFIG["max_side"]
    results_root: str = RESULTS_ROOT
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> DataSettings:
        return _pick(cls, cfg, {**DATA_CONFIG, **OUTPUT_CONFIG, "seed": 0})

    @property
    def given_by_user(self) -> bool:
        """A data root or dataset other than the defaults: missing data is then an error, not a
        reason to segment generated images."""
        return self.data_root != DATA_CONFIG["data_root"] or self.dataset != DATA_CONFIG["dataset"]


@dataclass(frozen=True)
class ModelSettings:
    """Which networks a pipeline loads and how they run (:data:`PIPELINE_CONFIG`'s model keys,
    documented there)."""

    classifier: str
    classifier_checkpoint: str | None
    target_class: int | None
    binary_target: str
    cam_batch_size: int
    ensemble_methods: list
    cam_dir: str | None
    segmenter: str
    segmenter_checkpoint: str | None
    decode_batch_size: int
    backend: str
    export_dir: str
    embedding_cache: str | None
    student_checkpoint: str | None
    student_tta: bool
    student_backend: str
    device: str

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> ModelSettings:
        return _pick(cls, cfg, PIPELINE_CONFIG)

    def user_set(self, key: str) -> bool:
        """The user changed this model file or name from :data:`PIPELINE_CONFIG`'s default."""
        value = getattr(self, key)
        return value is not None and value != PIPELINE_CONFIG[key]


def pipeline_config(cfg: dict[str, Any]) -> PipelineConfig:
    """The typed pipeline settings from a script's CONFIG (its :class:`PipelineConfig` keys)."""
    picked = {k: cfg[k] for k in PipelineConfig.__dataclass_fields__}
    return PipelineConfig(
        **{
            **picked,
            "prompts": PromptConfig(**picked["prompts"]),
            "colour": ColourProposalConfig(**picked["colour"]),
            "postprocess": PostprocessConfig(**picked["postprocess"]),
        }
    )


def resolve_pipeline(cfg: dict[str, Any]) -> tuple[ModelSettings, PipelineConfig]:
    """(models, pipeline) of a CONFIG with :data:`PIPELINE_CONFIG`'s keys, for
    :func:`cam_sam.runs.build.build_pipeline` (``build_pipeline(*resolve_pipeline(cfg), device)``)."""
    return ModelSettings.from_config(cfg), pipeline_config(cfg)


@dataclass(frozen=True)
class RunSettings:
    """One dataset run of ``cam_sam.segment``, resolved: its data, models and pipeline, what it
    writes, and ``config``, the whole CONFIG as given (recorded beside the results)."""

    data: DataSettings
    models: ModelSettings
    pipeline: PipelineConfig
    out_dir: str | None
    n_overlays: int
    save_uncertainty: bool
    oracle: bool
    multiclass: bool
    seed: int
    config: dict
    workers: int | str = "auto"


def resolve_run(cfg: dict[str, Any]) -> RunSettings:
    """The typed settings of a run from the keys of :data:`SEGMENT_CONFIG` (a script's CONFIG)."""
    return RunSettings(
        DataSettings.from_config(cfg),
        ModelSettings.from_config(cfg),
        pipeline_config(cfg),
        cfg["out_dir"],
        cfg["n_overlays"],
        cfg["save_uncertainty"],
        cfg["oracle"],
        cfg["multiclass"],
        cfg["seed"],
        dict(cfg),
        cfg["workers"],
    )
