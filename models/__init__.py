"""The networks: the classifier registry (one ``create_classifier`` for every architecture the project
explains, with its preprocessing), the student U-Net on a classifier backbone (``models.student``),
its ONNX export (``student_export``) and its ONNX Runtime / OpenVINO runner (``student_runtime``)."""

from models.registry import (
    CheckpointError,
    ClassifierSpec,
    available_classifiers,
    create_classifier,
    get_spec,
    preprocess_image,
    read_checkpoint,
    resolve_preprocessing,
)

__all__ = [
    "CheckpointError",
    "ClassifierSpec",
    "available_classifiers",
    "create_classifier",
    "get_spec",
    "preprocess_image",
    "read_checkpoint",
    "resolve_preprocessing",
]
