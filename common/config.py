"""Script configuration: a ``CONFIG`` dict at the top of each script, overridden by ``--set key=value``.

Values are parsed as JSON first, then as a Python literal, and otherwise kept as a string, so
``--set limit=20``, ``--set methods='["gradcam", "eigencam"]'`` and ``--set split=val`` all work.
"""
from __future__ import annotations

import argparse
import ast
import copy
import json
from typing import Any, Mapping, Sequence


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


def apply_overrides(config: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``config`` with each ``key=value`` applied. Unknown keys are an error."""
    result = copy.deepcopy(dict(config))
    for item in overrides:
        if "=" not in item:
            raise SystemExit(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        if key not in result:
            known = ", ".join(sorted(result))
            raise SystemExit(f"unknown CONFIG key {key!r}; known keys: {known}")
        result[key] = parse_value(text)
    return result


def config_from_argv(config: Mapping[str, Any], argv: Sequence[str] | None = None,
                     description: str | None = None,
                     presets: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Parse ``--set key=value`` (repeatable) from ``argv`` and apply it to ``config``.

    With ``presets``, ``--set preset=NAME`` first applies that named group of settings; the
    other ``--set`` values then apply on top of it, whatever their order on the command line.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a CONFIG key (value parsed as JSON or a Python literal)")
    args = parser.parse_args(argv)
    result = apply_overrides(config, args.overrides)
    name = result.get("preset")
    if presets and name:
        if name not in presets:
            raise SystemExit(f"unknown preset {name!r}; available: {', '.join(sorted(presets))}")
        result = apply_overrides({**dict(config), **presets[name], "preset": name}, args.overrides)
    return result
