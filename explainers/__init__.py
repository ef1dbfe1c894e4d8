"""Class Activation Maps through the ``grad-cam`` library, and LRP through ``zennit``.

The method names and :class:`CamResult` load with the package; :class:`CamExplainer` and
``make_target`` (torch) load when first used, so a run that computes no map never imports torch
through here."""

from explainers.methods import CAM_METHODS, EXPLAIN_METHODS, LRP, CamResult

__all__ = ["CAM_METHODS", "EXPLAIN_METHODS", "LRP", "CamExplainer", "CamResult", "make_target"]
_FROM_CAMS = ("CamExplainer", "make_target")


def __getattr__(name: str):
    if name in _FROM_CAMS:
        from explainers import cams

        return getattr(cams, name)
    raise AttributeError(f"module 'explainers' has no attribute {name!r}")
