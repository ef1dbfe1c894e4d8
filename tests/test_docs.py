"""The user's guide and the words of the project.

- The project speaks of versions, dates and commits: one word for a unit of work (spelled below as
  ``WORD``, built from two halves so that this file does not contain it) appears nowhere in the
  tracked files or their names, except in ONNX Runtime's own API:
  ``InferenceSession`` and ``SessionOptions`` anywhere, and a variable named ``WORD`` or ``WORD + "s"``
  in a file that binds that very name to an ``InferenceSession`` (``name = ort.InferenceSession(...)``),
  where it is used as code: assigned, passed, returned, iterated or its attribute read; in a
  Markdown file only inside a fenced code block, in a Python file never in a comment.
- Every ``python -m MODULE`` (also ``python3``, ``.venv/bin/python`` and ``torchrun ... -m``) in
  README.md names a script of this repository (pip, venv and pytest aside), every relative link
  and figure points at a file that exists, and the guide is at most 250 lines.
- Each run records the project's version in its ``config.json``; CHANGELOG.md's newest version is it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import cam_sam
from common.io import read_json, write_json
from common.runs import ResumableRun

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
README_MAX_LINES = 250

WORD = "ses" + "sion"
ONNX_API = {"Inference" + WORD.title(), WORD.title() + "Options"}  # ONNX Runtime's class names
TOKEN = re.compile(rf"\w*{WORD}\w*", re.IGNORECASE)
BINDS = re.compile(rf"\b({WORD}s?)\b\s*(?::[^=\n]*)?=\s*[^\n]*{'Inference' + WORD.title()}")
USED_AFTER = re.compile(r"\s*(?:=|\.\w|[,)\]:}]|$|in\b)")  # name = ..., name.run(, f(a, name), ...
USED_BEFORE = re.compile(r"(?:[(\[{,=]|\breturn|\bin|\bfor|\bdef \w+\(.*)\s*$")
TOOLS = {"pip", "venv", "pytest"}  # installers and the test runner


def tracked_files() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [name for name in out.decode().split("\0") if name]


def allowed_variable(line: str, start: int, end: int) -> bool:
    """The token at ``line[start:end]`` reads as a code identifier (not prose, not a string)."""
    before, after = line[:start], line[end:]
    if before.endswith(("'", '"', ".")) or after.startswith(("'", '"')):
        return False
    return bool(USED_AFTER.match(after) or USED_BEFORE.search(before))


def word_violations(path: str, text: str) -> list[str]:
    bound = set(BINDS.findall(text))
    markdown, python = path.endswith(".md"), path.endswith(".py")
    found, in_code = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if markdown and line.lstrip().startswith("```"):
            in_code = not in_code
        code = line.split("#", 1)[0] if python else line
        for match in TOKEN.finditer(line):
            token = match.group()
            if token in ONNX_API:
                continue
            if (
                token in bound
                and (python or (markdown and in_code))
                and match.end() <= len(code)
                and allowed_variable(line, match.start(), match.end())
            ):
                continue
            found.append(f"{path}:{number}: {token}")
    return found


def test_the_word_appears_only_in_onnx_runtimes_api():
    problems = []
    for path in tracked_files():
        if WORD in path.lower():
            problems.append(f"{path}: in the file's name")
        file = REPO / path
        if not file.is_file():  # deleted in the working tree, not yet committed
            continue
        data = file.read_bytes()
        if b"\0" in data[:8192]:  # binary (as grep -I)
            continue
        problems += word_violations(path, data.decode("utf-8", errors="replace"))
    assert not problems, f"{len(problems)} uses of the word outside ONNX Runtime's API:\n" + "\n".join(problems[:60])


def test_the_word_rule_allows_onnx_runtime_and_nothing_else():
    name = WORD
    code = (
        f"import onnxruntime as ort\n{name} = ort.InferenceSession(path)\nout = {name}.run(None, x)\n"
        f"f(model, {name}, images)\n# a {name} of work\n"
    )
    assert word_violations("a.py", code) == ["a.py:5: " + name]
    assert word_violations("b.py", f"{name} = make()\n{name}.run()\n") == ["b.py:1: " + name, "b.py:2: " + name]
    prose = f"ONNX Runtime's SessionOptions.\n\n```python\n{name} = ort.InferenceSession(p)\n```\nthe {name} ended\n"
    assert word_violations("c.md", prose) == ["c.md:6: " + name]
    assert word_violations("d.md", f"docs/{name}_12.md and {name.title()}s\n") == [
        f"d.md:1: {name}_12",
        f"d.md:1: {name.title()}s",
    ]


def readme_commands() -> list[str]:
    text = README.read_text().replace("\\\n", " ")
    launcher = r"(?:(?<![\w/.])python3?|\.venv/bin/python|torchrun\b[^\n`]*?)"
    return re.findall(rf"{launcher}\s+-m\s+([A-Za-z_][\w.]*)", text)


def test_every_readme_command_names_a_script_of_the_repository():
    modules = readme_commands()
    assert len(modules) >= 10, f"only {modules} found: the pattern no longer reads the README"
    missing = []
    for module in sorted(set(modules) - TOOLS):
        path = REPO / Path(*module.split("."))
        script = path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__main__.py"
        if not script.is_file() or '__name__ == "__main__"' not in script.read_text():
            missing.append(module)
    assert not missing, f"README.md runs modules that are not scripts here: {missing}"


def test_every_relative_link_of_the_readme_exists():
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text())
    local = [t for t in targets if not re.match(r"[a-z]+://|mailto:", t)]
    assert local, "no relative link found"
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_the_readme_is_a_short_guide():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines (at most {README_MAX_LINES})"


def test_each_run_records_the_projects_version(tmp_path):
    ResumableRun(tmp_path / "new", {"a": 1})
    assert read_json(tmp_path / "new" / "config.json") == {"a": 1, "version": cam_sam.__version__}
    write_json(tmp_path / "old" / "config.json", {"a": 1})  # a run of a version before 0.5.0
    ResumableRun(tmp_path / "old", {"a": 1})  # resumes
    assert read_json(tmp_path / "old" / "config.json")["version"] == cam_sam.__version__
    write_json(tmp_path / "other" / "config.json", {"a": 1, "version": "0.0.1"})
    ResumableRun(tmp_path / "other", {"a": 1})  # another version resumes too
    assert read_json(tmp_path / "other" / "config.json")["version"] == cam_sam.__version__


def test_the_changelogs_newest_version_is_the_packages():
    versions = re.findall(r"^## \[(\d+\.\d+\.\d+)\]", (REPO / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert versions and versions[0] == cam_sam.__version__
