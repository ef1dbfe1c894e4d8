"""Class Activation Maps through the ``grad-cam`` library."""
from explainers.cams import CAM_METHODS, CamExplainer, CamResult, make_target

__all__ = ["CAM_METHODS", "CamExplainer", "CamResult", "make_target"]
