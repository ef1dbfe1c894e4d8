"""Lesion classifiers from ISIC image labels (no masks): fine-tuning a melanoma or three-class
classifier (``classification.train``) and testing it (``classification.test``); the three-class one
names each lesion's class in multi-class runs, and any of them can feed the optional CAM route."""
