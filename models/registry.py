"""A registry of classifiers and one :func:`create_classifier`, in the manner of timm.

Each :class:`ClassifierSpec` knows its timm architecture, the layer its CAM is taken from, the
reshape transform that turns that layer's output into (B, C, h, w), and where its weights come
from. Preprocessing is read from the weights' own timm data config (mean, std, input size,
interpolation), never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common.checkpoints import CheckpointError, read_state_dict
from common.errors import SettingsError
from models.pretrained import efficientnet_lite0_state_dict

ReshapeTransform = Callable[[torch.Tensor], torch.Tensor]


def vit_reshape(model: torch.nn.Module) -> ReshapeTransform:
    """(B, 1 + h*w, C) tokens -> (B, C, h, w), dropping the prefix (class) tokens."""
    grid_h, grid_w = model.patch_embed.grid_size
    prefix = getattr(model, "num_prefix_tokens", 1)

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        grid = tokens[:, prefix:, :].reshape(tokens.size(0), grid_h, grid_w, tokens.size(2))
        return grid.permute(0, 3, 1, 2)

    return reshape


def channels_last_reshape(model: torch.nn.Module) -> ReshapeTransform:
    """(B, h, w, C) -> (B, C, h, w), for timm's Swin whose blocks are channels-last."""
    return lambda x: x.permute(0, 3, 1, 2)


@dataclass(frozen=True)
class ClassifierSpec:
    """How to build, explain and feed one classifier."""

    name: str
    timm_name: str
    target_layer: Callable[[torch.nn.Module], torch.nn.Module]
    reshape: Callable[[torch.nn.Module], ReshapeTransform] | None = None
    imagenet_weights: Callable[[], dict[str, torch.Tensor]] | None = None
    description: str = ""
    # other layers a CAM may be taken from, by name (the default is "last")
    extra_layers: dict[str, Callable[[torch.nn.Module], torch.nn.Module]] | None = None

    def layer(self, model: torch.nn.Module, name: str = "last") -> torch.nn.Module:
        if name == "last":
            return self.target_layer(model)
        if not self.extra_layers or name not in self.extra_layers:
            known = ["last", *(self.extra_layers or {})]
            raise SettingsError(f"{self.name} has no CAM layer {name!r}; available: {known}")
        return self.extra_layers[name](model)


_REGISTRY: dict[str, ClassifierSpec] = {}


def register(spec: ClassifierSpec) -> ClassifierSpec:
    _REGISTRY[spec.name] = spec
    return spec


register(
    ClassifierSpec(
        "efficientnet_lite0",
        "tf_efficientnet_lite0",
        lambda m: m.bn2,
        imagenet_weights=efficientnet_lite0_state_dict,
        description="EfficientNet-Lite0, ImageNet weights installed with pip (zero-shot default)",
        extra_layers={
            "stage6": lambda m: m.blocks[6],
            "stage5": lambda m: m.blocks[5],
            "stage4": lambda m: m.blocks[4],
        },
    )
)
register(ClassifierSpec("resnet50", "resnet50", lambda m: m.layer4[-1], description="ResNet50 (paper)"))
register(ClassifierSpec("mobilenetv2", "mobilenetv2_100", lambda m: m.bn2, description="MobileNetV2 (paper)"))
register(ClassifierSpec("efficientnet_b0", "efficientnet_b0", lambda m: m.bn2, description="EfficientNet-B0 (paper)"))
register(
    ClassifierSpec(
        "vit_b16",
        "vit_base_patch16_224",
        lambda m: m.blocks[-1].norm1,
        reshape=vit_reshape,
        description="ViT-B/16 (paper)",
    )
)
register(
    ClassifierSpec(
        "swin_t",
        "swin_tiny_patch4_window7_224",
        lambda m: m.layers[-1].blocks[-1],
        reshape=channels_last_reshape,
        description="Swin-T (paper)",
    )
)


def available_classifiers() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ClassifierSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise SettingsError(f"unknown classifier {name!r}; available: {', '.join(available_classifiers())}") from None


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(state dict, metadata) of a classifier checkpoint: the training script's file (metadata: its
    config, class names, ``num_classes``, ``arch``), a ``{"state_dict": ...}`` file or a plain state
    dict (empty metadata). A missing, unreadable or unsafe file raises :class:`CheckpointError` naming it."""
    return read_state_dict(path, "classifier checkpoint")


def _load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DDP-saved
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and state[k].shape != own[k].shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointError(
            f"checkpoint {path} does not fit {type(model).__name__}: {len(missing)} missing keys "
            f"{missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}, shape mismatches "
            f"{mismatched[:3]}. Check the classifier name and num_classes."
        )
    model.load_state_dict(state, strict=True)


def create_classifier(
    name: str, num_classes: int | None = None, checkpoint: str | Path | None = None, pretrained: bool = True
) -> torch.nn.Module:
    """Build classifier ``name`` in eval mode.

    ``num_classes``: None takes it from the checkpoint (its saved ``num_classes`` or the size of
    its classifier weight), else 1000 (the ImageNet head, for zero-shot CAMs).

    ``checkpoint``: a file of the project's training script (or a plain state dict) loaded
    strictly. Without one and with ``pretrained``, ImageNet weights are used where they install
    with pip (a head of ``num_classes != 1000`` is then freshly initialised); other architectures
    start from random weights, and a warning-worthy case is the caller's to report.
    """
    spec = get_spec(name)
    state, meta = read_checkpoint(checkpoint) if checkpoint is not None else ({}, {})  # the file is read once
    if num_classes is None:
        num_classes = _num_classes(state, meta, checkpoint) if checkpoint is not None else 1000
    import timm  # here, not with the module: timm (and the torchvision it imports) costs about 2 s at start-up

    model = timm.create_model(spec.timm_name, pretrained=False, num_classes=1000)
    if checkpoint is None and pretrained and spec.imagenet_weights is not None:
        model.load_state_dict(spec.imagenet_weights(), strict=True)
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    if checkpoint is not None:
        _load_state(model, state, Path(checkpoint))
    model.eval()
    return model


def _num_classes(state: dict[str, torch.Tensor], meta: dict, path: str | Path) -> int:
    if "num_classes" in meta:
        return int(meta["num_classes"])
    for key in ("classifier.weight", "head.fc.weight", "fc.weight", "head.weight"):
        key_state = state.get(key, state.get(f"module.{key}"))
        if key_state is not None:
            return int(key_state.shape[0])
    raise CheckpointError(f"cannot tell the number of classes of {path}; set num_classes")


def resolve_preprocessing(model: torch.nn.Module) -> dict:
    """The weights' own data config (timm): input_size, interpolation, mean, std."""
    import timm.data

    return timm.data.resolve_data_config({}, model=model)


_PIL_INTERP = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def resize_and_normalise(image: Image.Image, data_config: dict) -> torch.Tensor:
    """PIL RGB image -> (3, S, S) tensor: the whole frame resized to the input size with the
    config's interpolation, scaled to [0, 1], normalised with the config's mean and std."""
    _, height, width = data_config["input_size"]
    interp = _PIL_INTERP.get(data_config.get("interpolation", "bicubic"), Image.BICUBIC)
    resized = np.asarray(image.resize((width, height), interp), dtype=np.float32) / 255.0
    mean = np.asarray(data_config["mean"], dtype=np.float32)
    std = np.asarray(data_config["std"], dtype=np.float32)
    return torch.from_numpy(((resized - mean) / std).transpose(2, 0, 1).copy())


def preprocess_image(image: np.ndarray, data_config: dict) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, S, S) normalised tensor, identical at training, test and CAM
    time. The whole image is resized to the model's input size (no centre crop) so that a CAM
    computed on the tensor maps back onto the full original frame by a plain resize."""
    return resize_and_normalise(Image.fromarray(image), data_config).unsqueeze(0)
