"""Script configuration: a ``CONFIG`` dict at the top of each script, overridden by ``--set key=value``.

Groups of settings are nested dicts that map one to one onto the library's typed configs (for
example ``CONFIG["colour"]`` holds the fields of ``cam_sam.proposals.ColourProposalConfig``); a
dotted key reaches inside a group: ``--set colour.work_size=320``.

Values are parsed as JSON first, then as a Python literal, and otherwise kept as a string, so
``--set limit=20``, ``--set methods='["gradcam", "eigencam"]'`` and ``--set split=val`` all work.
A key that the CONFIG does not have is an error naming the key and the known ones.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from common.errors import SettingsError


def parse_value(text: str) -> Any:
    """Parse one override value: JSON, then a Python literal, else the raw string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def set_key(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``config[a][b] = value`` for ``dotted = "a.b"`` in place; a dict value for a group is
    merged into it. An empty dict default is an open mapping (label -> path, say): a dict value
    replaces it. Unknown keys raise :class:`~common.errors.SettingsError` naming the key and the known ones."""
    *groups, key = dotted.split(".")
    node = config
    for depth, group in enumerate(groups):
        if not isinstance(node.get(group), dict):
            raise SettingsError(
                f"unknown CONFIG group {'.'.join(groups[: depth + 1])!r}; known keys: {', '.join(sorted(node))}"
            )
        node = node[group]
    if key not in node:
        where = f" in group {'.'.join(groups)!r}" if groups else ""
        raise SettingsError(f"unknown CONFIG key {dotted!r}{where}; known keys: {', '.join(sorted(node))}")
    if isinstance(node[key], dict) and node[key] and isinstance(value, dict):
        for sub, sub_value in value.items():
            set_key(node[key], sub, sub_value)
    else:
        node[key] = copy.deepcopy(value)


def merge(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with ``overrides`` applied (nested dicts merged, keys checked)."""
    result = copy.deepcopy(dict(config))
    for key, value in overrides.items():
        set_key(result, key, value)
    return result


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: every setting under its dotted key."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def apply_overrides(config: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``config`` with each ``key=value`` (``key`` may be dotted) applied."""
    result = copy.deepcopy(dict(config))
    for item in overrides:
        if "=" not in item:
            raise SettingsError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        set_key(result, key.strip(), parse_value(text))
    return result


def config_from_argv(
    config: Mapping[str, Any],
    argv: Sequence[str] | None = None,
    description: str | None = None,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Parse ``--set key=value`` (repeatable) from ``argv`` and apply it to ``config``.

    With ``presets``, ``--set preset=NAME`` first merges that named group of settings; the other
    ``--set`` values then apply on top of it, whatever their order on the command line.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a CONFIG key (dotted for a group: colour.work_size=320; value as JSON or a Python literal)",
    )
    args = parser.parse_args(argv)
    result = apply_overrides(config, args.overrides)
    name = result.get("preset")
    if presets and name:
        if name not in presets:
            raise SettingsError(f"unknown preset {name!r}; available: {', '.join(sorted(presets))}")
        result = apply_overrides(merge(config, {**presets[name], "preset": name}), args.overrides)
    return result
