"""One student from several: the weighted mean of their weights (weight-space ensembling, as in
WiSE-FT and model soups). Students fine-tuned from one start (``train_student --set init_student``)
share a basin, so the mean network trades their failure kinds at the cost of one network.

    python -m self_training.average_students \
        --set students='["model_checkpoints/student_r4fe.pt", "results/student_ft_syn25u/student.pt"]' \
        --set weights='[0.5, 0.5]' --set out=results/student_soup/student.pt

One student, with ``colour_constancy`` or ``colour_strength``, is itself with new input colour
settings (the default's ``student_soup3h_sog.pt``: ``student_soup3h.pt`` with half a Shades of Gray
correction). Writes the student (float32, or float16 with ``half``) and ``<out>.json`` beside it
(the config). No image and no mask is read (:mod:`self_training.soup`).
"""

from __future__ import annotations

import logging
from typing import Any

from common.cli import run_main
from common.config import config_from_argv
from self_training.soup import Soup, make_soup

# fmt: off
CONFIG: dict[str, Any] = {
    "students": [],             # student.pt files of train_student, one architecture
    "weights": None,            # one per student (normalised); None: equal weights
    "out": "results/student_soup/student.pt",
    "half": False,              # float16 weights (half the size, for model_checkpoints/)
    "colour_constancy": "students",  # the soup's colour constancy (None or a method of common.colour);
                                     # "students": the students' own (they must agree)
    "colour_strength": None,         # its strength (common.colour.colour_gains); None: the students' own
}
# fmt: on


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    soup = Soup.from_config(config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0]))
    return {"out": str(make_soup(soup)), "weights": list(soup.weights)}


if __name__ == "__main__":
    run_main(main)
