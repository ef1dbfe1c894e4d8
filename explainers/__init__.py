"""Class Activation Maps through the ``grad-cam`` library, and LRP through ``zennit``."""
from explainers.cams import CAM_METHODS, EXPLAIN_METHODS, LRP, CamExplainer, CamResult, make_target

__all__ = ["CAM_METHODS", "EXPLAIN_METHODS", "LRP", "CamExplainer", "CamResult", "make_target"]
