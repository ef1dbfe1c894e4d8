"""Classifier registry: one ``create_classifier`` for every architecture the project explains."""
from models.registry import (CheckpointError, ClassifierSpec, available_classifiers, create_classifier,
                             get_spec, preprocess_image, read_checkpoint,
                             resolve_preprocessing)

__all__ = ["CheckpointError", "ClassifierSpec", "available_classifiers", "create_classifier", "get_spec",
           "preprocess_image", "read_checkpoint", "resolve_preprocessing"]
