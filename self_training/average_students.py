"""One student from several: the weighted mean of their weights (weight-space ensembling, as in
WiSE-FT and model soups). Students fine-tuned from one start (``train_student --set init_student``)
share a basin, so the mean network trades their failure kinds at the cost of one network.

    python -m self_training.average_students \
        --set students='["model_checkpoints/student_r4fe.pt", "results/student_ft_syn25u/student.pt"]' \
        --set weights='[0.5, 0.5]' --set out=results/student_soup/student.pt

One student, with ``input_size``, ``colour_constancy`` or ``colour_strength``, is itself with new input
settings (the default's ``student_soup3h_sog.pt``: ``student_soup3h.pt`` with half a Shades of Gray
correction). Writes the student (float32, or float16 with ``half``) and ``<out>.json`` beside it
(the config). No image and no mask is read.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from common.cli import run_main
from common.config import config_from_argv
from common.io import write_json
from models.student import StudentConfig, average_weights, load_student, save_student

CONFIG: dict[str, Any] = {
    "students": [],             # student.pt files of train_student, one architecture
    "weights": None,            # one per student (normalised); None: equal weights
    "out": "results/student_soup/student.pt",
    "half": False,              # float16 weights (half the size, for model_checkpoints/)
    "input_size": None,         # the soup's input size; None: the students' own (they must agree). The U-Net
                                # is fully convolutional, so students fine-tuned at other sizes average too
    "colour_constancy": "students",  # the soup's colour constancy (None or a method of common.colour);
                                     # "students": the students' own (they must agree)
    "colour_strength": None,         # its strength (common.colour.colour_gains); None: the students' own
}

log = logging.getLogger("self_training.average_students")


def soup_config(config: StudentConfig, cfg: dict[str, Any]) -> StudentConfig:
    """A student's config with the soup's own ``input_size``, ``colour_constancy`` and ``colour_strength`` where given:
    they set the input, not the network, so students that differ only there average."""
    if cfg["input_size"] is not None:
        config = replace(config, input_size=int(cfg["input_size"]))
    if cfg["colour_constancy"] != "students":
        config = replace(config, colour_constancy=cfg["colour_constancy"])
    if cfg["colour_strength"] is not None:
        config = replace(config, colour_strength=float(cfg["colour_strength"]))
    return config


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    if not cfg["students"]:
        raise SystemExit("students: give the student.pt files to average (one: its weights kept, its input "
                         "settings replaced by input_size, colour_constancy and colour_strength)")
    weights = cfg["weights"] or [1.0] * len(cfg["students"])
    loaded = [load_student(path) for path in cfg["students"]]
    configs = {repr(soup_config(config, cfg)) for _, config, _ in loaded}
    if len(configs) > 1:
        raise SystemExit(f"the students {cfg['students']} have different configs: only one architecture averages "
                         "(set input_size or colour_constancy to average students that differ only there)")
    model, config, _ = loaded[0]
    config = soup_config(config, cfg)
    try:
        model.load_state_dict(average_weights([m.state_dict() for m, _, _ in loaded], list(map(float, weights))))
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    out = Path(cfg["out"])
    save_student(out, model, config, extra={"averaged_from": list(map(str, cfg["students"])),
                                            "averaging_weights": list(map(float, weights))}, half=cfg["half"])
    write_json(out.with_suffix(".json"), cfg)
    log.info("the mean of %d students (weights %s) written to %s", len(loaded), weights, out)
    return {"out": str(out), "weights": weights}


if __name__ == "__main__":
    run_main(main)
