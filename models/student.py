"""The student: a lesion segmenter whose encoder is a classifier backbone of the registry.

A ``segmentation_models_pytorch`` U-Net over the timm encoder of the classifier (``tu-<timm
name>``), so the classifier that explains the lesion also learns to outline it. The encoder starts
from the classifier's ImageNet weights (installed with pip) or from a checkpoint of
``classification/train.py`` (the fine-tuned melanoma classifier); the decoder starts at random.

Frames: :meth:`StudentSegmenter.predict_proba` takes an (H, W, 3) uint8 RGB image in original
pixels, stretches it to ``input_size`` x ``input_size`` (aspect not kept, as for training), and
returns the (H, W) lesion probability in original pixels.

Checkpoints hold tensors and plain values only (``{"model": state_dict, "config": {...}}``) and
are read with ``weights_only=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.checkpoints import CheckpointError, safe_load, save_atomically
from common.colour import COLOUR_CONSTANCY_METHODS, colour_gains
from common.geometry import pairwise_iou
from models.registry import get_spec, read_checkpoint

INPUT_SIZE = 256  # training and inference resolution (square)
NORM_MEAN = NORM_STD = 0.5  # timm's data config of tf_efficientnet_lite0 (and of the classifier's training)


@dataclass
class StudentConfig:
    """``backbone``: classifier registry name of the encoder; ``decoder_channels``: U-Net decoder
    widths, deepest first; ``input_size``: the square side images are stretched to;
    ``colour_constancy``: the image's colour cast removed before the network sees it (one of
    :data:`common.colour.COLOUR_CONSTANCY_METHODS`; None: the RGB as it is), by
    ``colour_strength`` (1: fully; 0.5: half, :func:`common.colour.colour_gains`). Inference and
    export read them from here, so a checkpoint carries its own preprocessing (training reads its
    images uncorrected; ``self_training.average_students`` sets a student's correction)."""

    backbone: str = "efficientnet_lite0"
    decoder_channels: tuple[int, ...] = (128, 64, 32, 16, 8)
    input_size: int = INPUT_SIZE
    colour_constancy: str | None = None
    colour_strength: float = 1.0

    def colour_gains(self, image: np.ndarray) -> np.ndarray | None:
        """(3,) channel gains of ``image`` for this student's input, or None (no colour constancy)."""
        return colour_gains(image, self.colour_constancy, self.colour_strength)


def build_student(config: StudentConfig) -> torch.nn.Module:
    """The U-Net with a randomly initialised encoder and decoder, one output channel (logits)."""
    import segmentation_models_pytorch as smp

    spec = get_spec(config.backbone)
    return smp.Unet(
        encoder_name=f"tu-{spec.timm_name}",
        encoder_weights=None,
        classes=1,
        decoder_channels=tuple(config.decoder_channels),
    )


def load_backbone(student: torch.nn.Module, backbone: str, classifier_checkpoint: str | Path | None) -> int:
    """Copy a classifier's weights into the student's encoder: from ``classifier_checkpoint`` (a
    file of ``classification/train.py``) or, without one, the ImageNet weights that install with
    pip. Returns the number of tensors copied; an encoder tensor the classifier lacks (or of
    another shape) raises :class:`CheckpointError`."""
    if classifier_checkpoint is not None:
        state, _ = read_checkpoint(classifier_checkpoint)
        source = str(classifier_checkpoint)
    else:
        weights = get_spec(backbone).imagenet_weights
        if weights is None:
            raise CheckpointError(f"{backbone} has no pip-installed ImageNet weights: give classifier_checkpoint")
        state, source = weights(), f"{backbone} ImageNet weights"
    state = {k.removeprefix("module."): v for k, v in state.items()}
    encoder = student.encoder.model
    own = encoder.state_dict()
    missing = [k for k in own if k not in state or state[k].shape != own[k].shape]
    if missing:
        raise CheckpointError(
            f"{source} does not fit the student's {backbone} encoder: "
            f"{len(missing)} tensors missing or of another shape, e.g. {missing[:3]}"
        )
    encoder.load_state_dict({k: state[k] for k in own}, strict=True)
    return len(own)


def save_student(
    path: str | Path, model: torch.nn.Module, config: StudentConfig, extra: dict | None = None, half: bool = False
) -> None:
    """Write ``{"model": state_dict, "config": asdict(config), **extra}`` atomically; ``extra``
    must hold plain values (numbers, strings, lists, dicts) or tensors. ``half``: floating-point
    tensors stored as float16 (half the size, for shipping; loading casts them back)."""
    state = {k: v.half() if half and v.is_floating_point() else v for k, v in model.state_dict().items()}
    payload = {
        "model": state,
        "config": {**asdict(config), "decoder_channels": list(config.decoder_channels)},
        **(extra or {}),
    }
    save_atomically(payload, path)


def read_student(path: str | Path) -> tuple[StudentConfig, dict]:
    """(its config, the whole payload) of a :func:`save_student` file, read with
    ``weights_only=True``, without building the network; a file that is not one raises
    :class:`CheckpointError`."""
    payload = safe_load(path, "student checkpoint")
    if not isinstance(payload, dict) or "model" not in payload or "config" not in payload:
        raise CheckpointError(f"{path} is not a student checkpoint (no 'model' and 'config' entries)")
    raw = dict(payload["config"])
    if raw.get("colour_constancy") not in (None, *COLOUR_CONSTANCY_METHODS):
        raise CheckpointError(
            f"{path} asks for the colour constancy {raw['colour_constancy']!r}; this version knows "
            f"{COLOUR_CONSTANCY_METHODS}"
        )
    return StudentConfig(**{**raw, "decoder_channels": tuple(raw["decoder_channels"])}), payload


def load_student(path: str | Path) -> tuple[torch.nn.Module, StudentConfig, dict]:
    """(model in eval mode, its config, the whole payload) from a :func:`save_student` file
    (:func:`read_student`); a file that does not fit raises :class:`CheckpointError`."""
    config, payload = read_student(path)
    model = build_student(config)
    try:
        model.load_state_dict(payload["model"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"student checkpoint {path} does not fit its own config: {exc}") from exc
    return model.eval(), config, payload


def to_input(images: np.ndarray | list[np.ndarray], size: int, gains: np.ndarray | None = None) -> torch.Tensor:
    """(H, W, 3) uint8 image(s) -> (B, 3, size, size) float, stretched and normalised; ``gains``
    (3,), when given, multiply the channels of every image after stretching (clipped to 0-1): the
    colour constancy of :mod:`common.colour`, applied where it is cheapest."""
    batch = [images] if isinstance(images, np.ndarray) else images
    tensors = []
    for image in batch:
        t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0
        tensors.append(F.interpolate(t, (size, size), mode="bilinear", align_corners=False, antialias=True))
    x = torch.cat(tensors)
    if gains is not None:
        x = (x * torch.as_tensor(gains, dtype=x.dtype).view(1, 3, 1, 1)).clamp(0.0, 1.0)
    return (x - NORM_MEAN) / NORM_STD


# Test-time flips averaged by StudentSegmenter(tta=True): none, left-right, up-down (dims of a
# (B, C, H, W) tensor). On the 120 validation images they lifted round 1's IoU from 0.681 to 0.696
# (the choice was made on those images: a development choice, reported as such in the README).
TTA_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,))

# StudentSegmenter.zoom_agreement: the black border added on each side, a fraction of that side.
# Chosen for the confidence on both evaluation sets together among 0.15 and 0.3 black and 0.15 and
# 0.3 mirrored borders (docs/experiments/tr-03); it never changes the delivered mask.
ZOOM_OUT_PAD = 0.15


class StudentSegmenter:
    """Inference with a trained student: ``predict_proba(image) -> (H, W)`` lesion probability.
    ``tta``: average the probabilities over :data:`TTA_FLIPS` (one batch of three)."""

    def __init__(
        self,
        model: torch.nn.Module | None,
        config: StudentConfig,
        device: str | torch.device = "cpu",
        tta: bool = True,
        runner: Callable[..., list[np.ndarray]] | None = None,
    ) -> None:
        if model is None and runner is None:
            raise ValueError("a student needs its network or a runner of its exported copy")
        self.model = model.to(device).eval() if model is not None else None
        self.config = config
        self.device = torch.device(device)
        self.flips = TTA_FLIPS if tta else ((),)
        self._deepest: torch.Tensor | None = None
        # batch (B, 3, S, S) -> [logits (B, 1, S, S), pooled deepest features (B, C)] as numpy arrays:
        # an exported copy of the network (models.student_runtime); None: the torch model itself
        self.runner = runner
        # the encoder's deepest feature map of the last forward pass: its spatial mean is what the
        # student "sees" in an image (cam_sam.depth compares it with its training images'); a
        # model without an ``encoder`` (not a segmentation-models-pytorch U-Net) gives no features;
        # an exported copy always does (models.student_runtime exports only students that do)
        encoder = getattr(self.model, "encoder", None)
        self.has_features = isinstance(encoder, torch.nn.Module) or model is None
        if isinstance(encoder, torch.nn.Module):
            encoder.register_forward_hook(self._keep_deepest)

    def _keep_deepest(self, module, inputs, output) -> None:
        self._deepest = output[-1]

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(logits (B, 1, S, S), the deepest features' spatial mean (B, C) or None) of a normalised
        (B, 3, S, S) batch, through :attr:`runner` when one is set, else the torch model."""
        if self.runner is not None:
            logits, pooled = self.runner(image=batch.cpu().numpy().astype(np.float32))
            return torch.from_numpy(logits).to(batch.device), torch.from_numpy(pooled).to(batch.device)
        self._deepest = None
        logits = self.model(batch)
        return logits, self._deepest.mean((2, 3)) if self._deepest is not None else None

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device = "cpu", tta: bool = True
    ) -> StudentSegmenter:
        model, config, _ = load_student(path)
        return cls(model, config, device, tta)

    @torch.no_grad()
    def predict(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """(H, W, 3) uint8 RGB -> ((H, W) float32 probability of lesion in original pixels, flip
        agreement): the mean IoU between the masks (probability > 0.5, at the input size) of the
        flipped copies, 1.0 without ``tta``. A student that sees a different lesion when the image
        is mirrored is less sure of it."""
        prob, agreement, _ = self.predict_with_features(image)
        return prob, agreement

    @torch.no_grad()
    def predict_with_features(self, image: np.ndarray) -> tuple[np.ndarray, float, np.ndarray | None]:
        """:meth:`predict`, plus the (C,) float32 spatial mean of the encoder's deepest features
        over the flipped copies (the same forward pass; no extra cost; None without an encoder)."""
        logits, pooled = self.forward(self._flipped(image, self.config.colour_gains(image)))
        return self._merge_flips(logits, pooled, image.shape[:2])

    @torch.no_grad()
    def predict_with_zoom(
        self, image: np.ndarray, pad: float = ZOOM_OUT_PAD
    ) -> tuple[np.ndarray, float, np.ndarray | None, float]:
        """:meth:`predict_with_features` and :meth:`zoom_agreement` from one forward pass: the
        flipped copies and the zoomed-out view in one batch of four. Each item's outputs are the
        same (through OpenVINO bit for bit on validation). On a 2-core CPU, with two threads, the
        student's step took 0.099-0.103 s an image against 0.107-0.119 s for two passes; with one
        thread (each worker of a dataset run) no difference was measured."""
        gains = self.config.colour_gains(image)  # once for both views
        flipped = self._flipped(image, gains)
        zoomed, crop = self._zoomed_out(image, pad, gains)
        logits, pooled = self.forward(torch.cat([flipped, zoomed]))
        k = len(flipped)
        prob, agreement, features = self._merge_flips(
            logits[:k], None if pooled is None else pooled[:k], image.shape[:2]
        )
        return prob, agreement, features, self._zoom_agreement_of(logits[k:], crop, prob)

    def _flipped(self, image: np.ndarray, gains: np.ndarray | None) -> torch.Tensor:
        """(K, 3, S, S): the normalised image and its flipped copies (:attr:`flips`); ``gains``:
        the image's colour gains (:meth:`StudentConfig.colour_gains`)."""
        x = to_input(image, self.config.input_size, gains).to(self.device)
        return torch.cat([x.flip(dims) if dims else x for dims in self.flips])

    def _merge_flips(
        self, logits: torch.Tensor, pooled: torch.Tensor | None, hw: tuple[int, int]
    ) -> tuple[np.ndarray, float, np.ndarray | None]:
        """(the flip-averaged (H, W) probability in original pixels, the flips' agreement, the (C,)
        mean pooled features) from the (K, 1, S, S) logits and (K, C) features of :meth:`_flipped`."""
        probs = torch.sigmoid(logits.float())
        features = pooled.float().mean(0).cpu().numpy() if pooled is not None else None
        aligned = torch.stack([p.flip(dims) if dims else p for p, dims in zip(probs, self.flips)])  # (K, 1, S, S)
        prob = F.interpolate(aligned.mean(0, keepdim=True), hw, mode="bilinear", align_corners=False)
        return prob[0, 0].cpu().numpy(), view_agreement(aligned[:, 0] > 0.5), features

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) float32 probability of lesion, original pixels."""
        return self.predict(image)[0]

    @torch.no_grad()
    def zoom_agreement(self, image: np.ndarray, prob: np.ndarray, pad: float = ZOOM_OUT_PAD) -> float:
        """IoU between the student's mask of ``image`` ((H, W) ``prob`` > 0.5, original pixels,
        from :meth:`predict`) and its mask of the same image zoomed out: a black border of ``pad``
        x each side added on every side (as a wider dermoscope vignette would), one forward pass,
        cut back to the image's region. Both compared at the input size; two empty masks agree.
        A student whose outline depends on how large the lesion appears is less sure of it."""
        zoomed, crop = self._zoomed_out(image, pad, self.config.colour_gains(image))
        return self._zoom_agreement_of(self.forward(zoomed)[0], crop, prob)

    def _zoomed_out(
        self, image: np.ndarray, pad: float, gains: np.ndarray | None
    ) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
        """(1, 3, S, S): ``image`` with a black border of ``pad`` x each side, normalised (``gains``:
        those of the image itself, since the black border would change the estimate); and the
        (top, left, bottom, right) of the image's own region in it, in input pixels."""
        h, w = image.shape[:2]
        ph, pw = round(h * pad), round(w * pad)
        size = self.config.input_size
        zoomed = to_input(np.pad(image, ((ph, ph), (pw, pw), (0, 0))), size, gains).to(self.device)
        top, left = round(ph * size / (h + 2 * ph)), round(pw * size / (w + 2 * pw))
        return zoomed, (top, left, size - top, size - left)

    def _zoom_agreement_of(self, logits: torch.Tensor, crop: tuple[int, int, int, int], prob: np.ndarray) -> float:
        """:meth:`zoom_agreement` from the zoomed-out view's (1, 1, S, S) ``logits``."""
        size = self.config.input_size
        top, left, bottom, right = crop
        zoomed = torch.sigmoid(logits.float())
        back = F.interpolate(zoomed[..., top:bottom, left:right], (size, size), mode="bilinear", align_corners=False)
        mine = F.interpolate(
            torch.from_numpy(np.ascontiguousarray(prob, np.float32))[None, None],
            (size, size),
            mode="bilinear",
            align_corners=False,
        )
        return view_agreement(torch.cat([back[:, 0], mine[:, 0].to(back.device)]) > 0.5)


def view_agreement(masks: torch.Tensor) -> float:
    """Mean pairwise IoU of K boolean (K, S, S) masks of the same image seen K ways (flips, or the
    frame and a zoomed-out view mapped back): 1.0 for K = 1; two empty masks agree."""
    k = len(masks)
    if k < 2:
        return 1.0
    return float((pairwise_iou(masks.cpu().numpy()).sum() - k) / (k * (k - 1)))


def average_weights(states: list[dict[str, torch.Tensor]], weights: list[float]) -> dict[str, torch.Tensor]:
    """The weighted mean of state dicts of one architecture (weight-space ensembling, WiSE-FT /
    model soups: students fine-tuned from one start lie in one basin, so their mean is a network
    that trades their behaviours at no inference cost). ``weights`` are normalised to sum 1;
    integer buffers (BatchNorm's batch counts) are taken from the first state."""
    if len(states) != len(weights) or not states:
        raise ValueError(f"{len(states)} state dicts and {len(weights)} weights: give one weight per state")
    keys = set(states[0])
    for state in states[1:]:
        if set(state) != keys:
            raise ValueError("the students differ in architecture: their state dicts have other keys")
    total = float(sum(weights))
    mean = {}
    for key, first in states[0].items():
        if not first.is_floating_point():
            mean[key] = first.clone()
            continue
        mean[key] = sum(w / total * s[key].float() for w, s in zip(weights, states)).to(first.dtype)
    return mean
