"""Ship a trained student: fit the trust it carries and write it beside the checkpoint.

    python -m self_training.ship --set checkpoint=results/my_student/student.pt
    python -m self_training.ship --set checkpoint=results/my_student/student.pt --set presets='["student"]'

Fits the student's out-of-depth statistics on its training images, runs it as each student
preset (``student``, the default, ``fast``, ``realtime``) over the development sets and fits each
preset's expected-IoU map and review threshold there (:mod:`self_training.shipping` says how),
then writes beside the checkpoint ``<stem>.trust.json`` (the sidecar a run reads its verdicts
from), ``<stem>.depth.npz`` and ``<stem>.md`` (a model-card stub with its figures). The
development runs are resumable in ``out_dir``. ``--set student_checkpoint=<checkpoint>`` then
gives that student's own verdicts.
"""

from __future__ import annotations

import logging
from typing import Any

from cam_sam.calibration import PRESET_VARIANTS
from cam_sam.depth import THRESHOLD_QUANTILE
from cam_sam.settings import DATA_CONFIG
from common.cli import run_main
from common.config import config_from_argv
from self_training.shipping import DEVELOPMENT_SETS, FRAMES_DIR, PER_SET, Shipping, ship_student

# fmt: off
CONFIG: dict[str, Any] = {
    "checkpoint": None,  # the student to ship (self_training.train_student's, or an average)
    "sets": DEVELOPMENT_SETS,  # the development sets: each a "name" and the data keys of
    # cam_sam.segment (data_root, split, every, image_dir, mask_dir, ...);
    # masks known, never trained on
    "presets": list(PRESET_VARIANTS),  # the student presets whose verdicts are fitted
    "min_failures_flagged": 0.8,  # a preset's review threshold flags at least this share of the
    # development sets' failures (IoU < 0.5), pooled
    # the out-of-depth statistics: the student's training images
    "depth_data_root": DATA_CONFIG["data_root"],  # an ISIC layout: its training crops, train_every18 left out
    "depth_image_dirs": [FRAMES_DIR],  # folders of further training images (those missing are skipped)
    "per_set": PER_SET,  # at most this many images of each, evenly spread
    "quantile": THRESHOLD_QUANTILE,  # the threshold: this quantile of held-out training images' distances
    "seed": 0,
    "out_dir": None,  # the development runs; None: results/ship_<checkpoint stem>
    "device": "auto",
    "student_backend": "auto",
    "workers": "auto",
}
# fmt: on


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    report = ship_student(Shipping.from_config(cfg))
    for preset, fitted in report["presets"].items():
        sets = ", ".join(
            f"{name} IoU {f['iou']:.3f}, flagged {f['flagged']} of {f['n']} "
            f"({f['failures_flagged']} of {f['failures']} failures)"
            for name, f in fitted["sets"].items()
        )
        print(
            f"{preset}: review threshold {fitted['review_threshold']:.2f} "
            f"(expected IoU {fitted['expected_iou_level']:.2f}); {sets}"
        )
    print(f"out of depth: {report['depth']}\nwrote {report['sidecar']} and {report['card']}")
    return report


if __name__ == "__main__":
    run_main(main)
