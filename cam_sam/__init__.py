"""Skin-lesion segmentation without pixel labels. By default the self-trained student (a U-Net on a
classifier backbone, trained on pseudo-masks) segments each image alone and says how far to trust
its mask (confidence, expected IoU, review flag and reason); colour proposals and the CAM -> prompts
-> promptable segmenter routes remain as options (presets ``arbiter``, ``zero_shot``, ``paper``).

The modules here are the one-image core (no files, no CLI); :mod:`cam_sam.settings` is the schema of
a run's settings, :mod:`cam_sam.runs` runs a dataset, :mod:`cam_sam.serve` the page and its API,
:mod:`cam_sam.studies` the tables and figures. Scripts: ``segment``, ``export``."""

from common.version import __version__

__all__ = ["__version__"]
