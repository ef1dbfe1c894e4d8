"""CAMs for any registry classifier, at the image's original size.

The methods are grad-cam's own classes; this module only chooses the target layer, reshape
transform and target, runs them on the preprocessed image, and maps the (S, S) CAM back onto the
original (H, W) frame. Because :func:`models.preprocess_image` resizes the whole image (no crop),
that mapping is a plain resize.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import cv2
import numpy as np
import torch

from common.errors import SettingsError
from explainers.methods import CAM_METHODS, DEFAULT_ENSEMBLE, ENSEMBLE, EXPLAIN_METHODS, LAYER_SEPARATOR, LRP, CamResult
from models.registry import get_spec, preprocess_image, resolve_preprocessing, vit_reshape

# grad-cam and zennit are imported when a map is first asked for, not with this module: grad-cam
# brings matplotlib and scikit-learn with it (about a second of start-up on a 2-core CPU), which a
# run that computes no CAM (the default student presets) never needs. The method names and
# CamResult live in explainers.methods, which loads no torch.


@functools.cache
def cam_class(method: str) -> type:
    """The grad-cam class of a :data:`CAM_METHODS` method (``KeyError`` for any other name)."""
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

    name = CAM_METHODS[method]
    if name != "SignedEigenCAM":
        return getattr(pytorch_grad_cam, name)

    class SignedEigenCAM(pytorch_grad_cam.EigenCAM):
        """EigenCAM whose principal component is oriented so that the salient part is positive
        (the SVD sign is arbitrary; grad-cam's Seg-Eigen-CAM correction, no ground truth involved)."""

        def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):
            return get_2d_projection_with_sign_correction(activations)

    return SignedEigenCAM


BINARY_TARGETS = ("melanoma", "predicted")


def make_target(
    model_output: torch.Tensor, target_class: int | None, binary_target: str = "melanoma"
) -> tuple[Callable, str]:
    """The CAM target for one image's logits (1, K).

    K == 1 (a single melanoma logit): ``binary_target`` "melanoma" explains the melanoma logit
    itself (evidence for melanoma); "predicted" explains the predicted side: the logit when the
    melanoma probability is >= 0.5, else its negation (evidence for "not melanoma"), so a lesion
    the classifier calls benign still gets a map. K > 1: ``target_class`` when given, else the
    top-1 predicted class (the zero-shot ImageNet case).
    """
    from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget, ClassifierOutputTarget

    if model_output.shape[-1] == 1:
        if binary_target not in BINARY_TARGETS:
            raise SettingsError(f"binary_target must be one of {BINARY_TARGETS}, not {binary_target!r}")
        if binary_target == "predicted" and float(model_output.reshape(-1)[0]) < 0:
            return BinaryClassifierOutputTarget(0), "not_melanoma_logit"
        return BinaryClassifierOutputTarget(1), "melanoma_logit"
    index = int(model_output.argmax(dim=-1)[0]) if target_class is None else int(target_class)
    return ClassifierOutputTarget(index), f"class_{index}"


FLAT_RANGE = 1e-6  # a map whose max - min is below this is flat: it ranks no pixel above another


def normalise_map(cam: np.ndarray) -> tuple[np.ndarray, bool]:
    """Any map -> (float32 map min-max scaled to [0, 1], constant); non-finite values count 0 and a
    flat map (see :data:`FLAT_RANGE`) becomes all zeros with ``constant`` True."""
    cam = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(cam.min()), float(cam.max())
    if high - low < FLAT_RANGE:
        return np.zeros_like(cam), True
    return ((cam - low) / (high - low)).astype(np.float32), False


def mean_of_maps(maps: list[np.ndarray]) -> tuple[np.ndarray, bool]:
    """The ensemble of K same-shape maps: each :func:`normalise_map`-ed, flat ones left out (a flat
    member carries no ranking), then averaged. Returns (map, constant): ``constant`` when every
    member is flat (the map is then all zeros)."""
    normalised = [normalise_map(m) for m in maps]
    kept = [m for m, constant in normalised if not constant]
    if not kept:
        return normalised[0][0], True
    return np.mean(kept, axis=0).astype(np.float32), False


def to_original_frame(cam: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """(S, S) CAM -> (H, W) float32 in [0, 1]; returns (map, constant)."""
    cam = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return normalise_map(cv2.resize(cam, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR))


class CamExplainer:
    """Computes one or several CAM methods for a registry classifier.

    ``model``: a classifier from :func:`models.create_classifier`; ``classifier_name``: its
    registry name (target layer and reshape transform); ``batch_size``: forward passes per batch
    for ScoreCAM and AblationCAM; ``target_class`` / ``binary_target``: see :func:`make_target`;
    ``ensemble_methods``: the members of the ``ensemble`` method (:data:`DEFAULT_ENSEMBLE`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        classifier_name: str,
        target_class: int | None = None,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
        layer: str = "last",
        binary_target: str = "melanoma",
        ensemble_methods: tuple[str, ...] | list[str] = DEFAULT_ENSEMBLE,
    ) -> None:
        if binary_target not in BINARY_TARGETS:
            raise SettingsError(f"binary_target must be one of {BINARY_TARGETS}, not {binary_target!r}")
        self.model = model.to(device).eval()
        self.spec = get_spec(classifier_name)
        self.data_config = resolve_preprocessing(model)
        self.target_layers = [self.spec.layer(model, layer)]
        self.ensemble_methods = list(ensemble_methods)
        for member in self.ensemble_methods:
            self._check_member(member)
        self.reshape = self.spec.reshape(model) if self.spec.reshape else None
        self.target_class = target_class
        self.binary_target = binary_target
        self.batch_size = batch_size
        self.device = torch.device(device)

    def _check_member(self, member: str) -> None:
        method, _, layer = member.partition(LAYER_SEPARATOR)
        if method not in (*CAM_METHODS, LRP):
            raise SettingsError(
                f"ensemble member {member!r}: unknown method {method!r}; available: {', '.join([*CAM_METHODS, LRP])}"
            )
        if layer and method == LRP:
            raise SettingsError(f"ensemble member {member!r}: LRP explains the whole network, it has no layer")
        if layer:
            self.spec.layer(self.model, layer)  # an unknown layer name is refused here, not per image

    def _build(self, method: str, layer: str | None = None):
        if method not in CAM_METHODS:
            raise SettingsError(f"unknown CAM method {method!r}; available: {', '.join(EXPLAIN_METHODS)}")
        cls = cam_class(method)
        target_layers = [self.spec.layer(self.model, layer)] if layer else self.target_layers
        kwargs = {"reshape_transform": self.reshape}
        if method == "ablationcam":
            kwargs["batch_size"] = self.batch_size
            if self.spec.reshape is vit_reshape:
                from pytorch_grad_cam.ablation_layer import AblationLayerVit

                kwargs["ablation_layer"] = AblationLayerVit()
        cam = cls(model=self.model, target_layers=target_layers, **kwargs)
        if method == "scorecam":
            cam.batch_size = self.batch_size
        return cam

    def prepare(self, image: np.ndarray) -> tuple[torch.Tensor, Callable, str]:
        """(input tensor (1, 3, S, S), CAM target, target name) of an (H, W, 3) uint8 image."""
        tensor = preprocess_image(image, self.data_config).to(self.device)
        with torch.no_grad():
            logits = self.model(tensor)
        target, target_name = make_target(logits, self.target_class, self.binary_target)
        return tensor, target, target_name

    def _raw_map(self, member: str, tensor: torch.Tensor, target: Callable) -> np.ndarray:
        """(S, S) float32 map of one method (``"method"`` or ``"method@layer"``) on the input tensor."""
        method, _, layer = member.partition(LAYER_SEPARATOR)
        if method == LRP:
            from explainers.lrp import lrp_map

            return lrp_map(self.model, tensor, target)
        with self._build(method, layer or None) as cam:  # hooks released on exit
            return np.asarray(cam(input_tensor=tensor, targets=[target])[0], np.float32)

    def explain(self, image: np.ndarray, methods: list[str], prepared: tuple | None = None) -> dict[str, CamResult]:
        """CAMs of ``image`` (H, W, 3) uint8 for each method, keyed by method name. ``prepared``:
        what :meth:`prepare` returned for this image, to reuse its classifier pass. ``ensemble``
        is the :func:`mean_of_maps` of :attr:`ensemble_methods`' (S, S) maps; every map, member or
        not, is computed once per call."""
        tensor, target, target_name = prepared if prepared is not None else self.prepare(image)
        wanted = [m for m in methods if m != ENSEMBLE]
        if ENSEMBLE in methods:
            wanted += [m for m in self.ensemble_methods if m not in wanted]
        raw = {member: self._raw_map(member, tensor, target) for member in wanted}
        if ENSEMBLE in methods:
            raw[ENSEMBLE] = mean_of_maps([raw[m] for m in self.ensemble_methods])[0]
        results = {}
        for method in methods:
            heatmap, constant = to_original_frame(raw[method], image.shape[:2])
            results[method] = CamResult(method, heatmap, constant, target_name, raw=raw[method])
        return results
