"""One student from several, the library of ``self_training.average_students``: the weighted mean
of their weights (weight-space ensembling, WiSE-FT and model soups), with the soup's own input
colour settings. No image and no mask is read."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from common.colour import COLOUR_CONSTANCY_METHODS
from common.errors import CheckpointError, SettingsError
from common.io import write_json
from models.student import StudentConfig, average_weights, load_student, save_student

log = logging.getLogger("self_training.average_students")

STUDENTS_OWN = "students"  # colour_constancy: the students' own (they must agree)


@dataclass(frozen=True)
class Soup:
    """A weight-space mean: each field is the ``self_training.average_students`` CONFIG key of
    that name (documented there; ``weights`` filled in equal when not given); ``config`` is the
    CONFIG as given, written beside the soup."""

    students: tuple[str, ...]
    weights: tuple[float, ...]
    out: str
    half: bool
    colour_constancy: str | None
    colour_strength: float | None
    config: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Soup:
        students = tuple(map(str, cfg["students"]))
        if not students:
            raise SettingsError(
                "students: give the student.pt files to average (one: its weights kept, its input "
                "colour settings replaced by colour_constancy and colour_strength)"
            )
        weights = tuple(map(float, cfg["weights"] or [1.0] * len(students)))
        if len(weights) != len(students):
            raise SettingsError(f"weights: one per student ({len(students)}), not {len(weights)}")
        if cfg["colour_constancy"] not in (None, STUDENTS_OWN, *COLOUR_CONSTANCY_METHODS):
            raise SettingsError(
                f"colour_constancy must be null, {STUDENTS_OWN!r} or one of {COLOUR_CONSTANCY_METHODS}, "
                f"not {cfg['colour_constancy']!r}"
            )
        strength = None if cfg["colour_strength"] is None else float(cfg["colour_strength"])
        return cls(students, weights, str(cfg["out"]), bool(cfg["half"]), cfg["colour_constancy"], strength, dict(cfg))

    def student_config(self, config: StudentConfig) -> StudentConfig:
        """A student's config with the soup's own ``colour_constancy`` and ``colour_strength`` where
        given: they set the input, not the network, so students that differ only there average."""
        if self.colour_constancy != STUDENTS_OWN:
            config = replace(config, colour_constancy=self.colour_constancy)
        if self.colour_strength is not None:
            config = replace(config, colour_strength=self.colour_strength)
        return config


def make_soup(soup: Soup) -> Path:
    """Write the mean student (float32, or float16 with ``half``) to ``out`` and the soup's
    CONFIG to ``<out>.json``; students of different architectures are refused. Returns ``out``."""
    loaded = [load_student(path) for path in soup.students]
    configs = {repr(soup.student_config(config)) for _, config, _ in loaded}
    if len(configs) > 1:
        raise CheckpointError(
            f"the students {list(soup.students)} have different configs: only one architecture "
            "averages (set colour_constancy to average students that differ only there)"
        )
    model, config, _ = loaded[0]
    model.load_state_dict(average_weights([m.state_dict() for m, _, _ in loaded], list(soup.weights)))
    out = Path(soup.out)
    save_student(
        out,
        model,
        soup.student_config(config),
        extra={"averaged_from": list(soup.students), "averaging_weights": list(soup.weights)},
        half=soup.half,
    )
    write_json(out.with_suffix(".json"), soup.config)
    log.info("the mean of %d students (weights %s) written to %s", len(loaded), list(soup.weights), out)
    return out
