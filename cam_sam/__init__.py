"""CAM -> prompts -> promptable segmenter: the zero-shot segmentation pipeline."""

from common.version import __version__

__all__ = ["__version__"]
