"""Classification figures from the files earlier runs wrote (read only; nothing is recomputed).

* ``learning_curves.png`` from a training run's ``metrics.jsonl`` (training loss; validation
  ROC-AUC and balanced accuracy per epoch, the selected epoch marked);
* ``roc.png`` from a test run's ``scores.csv`` (image_id, melanoma, score) and ``metrics.json``
  (the operating point at the threshold chosen on the threshold split).

    python -m visualisations.classification_plots --set train_run=results/train_x --set test_run=results/test_x
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402

from common.cli import run_main
from common.config import config_from_argv  # noqa: E402
from common.errors import DataError, SettingsError  # noqa: E402
from common.io import read_json, read_jsonl, save_figure  # noqa: E402
from visualisations.classification_figures import learning_curves_figure, roc_figure  # noqa: E402

CONFIG: dict[str, Any] = {
    "train_run": None,  # folder with metrics.jsonl (classification.train)
    "test_run": None,  # folder with scores.csv and metrics.json (classification.test)
    "out_dir": None,  # None: each figure beside its input
}


def main(argv: list[str] | None = None) -> list[Path]:
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    if not cfg["train_run"] and not cfg["test_run"]:
        raise SettingsError("set train_run=<training run folder> and/or test_run=<test run folder>")
    written = []
    if cfg["train_run"]:
        run = Path(cfg["train_run"])
        if not (run / "metrics.jsonl").is_file():
            raise DataError(f"{run / 'metrics.jsonl'} not found: is {run} a classification.train run?")
        path = Path(cfg["out_dir"] or run) / "learning_curves.png"
        save_figure(learning_curves_figure(read_jsonl(run / "metrics.jsonl")), path, dpi=150)
        written.append(path)
    if cfg["test_run"]:
        run = Path(cfg["test_run"])
        for name in ("scores.csv", "metrics.json"):
            if not (run / name).is_file():
                raise DataError(f"{run / name} not found: is {run} a classification.test run?")
        scores = pd.read_csv(run / "scores.csv")
        path = Path(cfg["out_dir"] or run) / "roc.png"
        save_figure(
            roc_figure(scores["score"].to_numpy(), scores["melanoma"].to_numpy(), read_json(run / "metrics.json")),
            path,
            dpi=150,
        )
        written.append(path)
    for path in written:
        print(f"written: {path}")
    return written


if __name__ == "__main__":
    run_main(main)
