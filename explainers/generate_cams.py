"""CAM stage: heatmaps for a split, for several models, layers and methods, with their quality.

Per image and (model, method): ``heatmaps/<model>/<method>/<id>.npy`` (float16 in [0, 1] at the
original size; the segmentation script can reuse them with ``--set cam_dir=<run>/heatmaps/<model>``),
an overlay PNG for the first images, and CAM quality against the lesion mask: pointing game,
energy pointing game, IoU of the thresholded CAM at several thresholds, box IoU, and grad-cam's
ROAD faithfulness score for the classifier (higher: removing the most relevant pixels hurts the
target more than removing the least relevant ones). ``metrics.json`` and ``metrics.csv`` hold the
mean per model x method. Resumable: rerun with the same ``out_dir``.

    python -m explainers.generate_cams --set methods='["gradcam","eigencam"]' --set limit=20
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from pytorch_grad_cam.metrics.road import ROADCombined

from common.cli import run_main
from common.config import config_from_argv
from common.defaults import DATA_ROOT, RESULTS_ROOT
from common.devices import resolve_device
from common.io import read_json, resolve_run_dir, save_figure, write_csv, write_json, write_npy
from common.runs import ResumableRun
from data.catalogue import open_dataset
from data.isic import check_image_content, subset_ids
from explainers.cams import DEFAULT_ENSEMBLE, CamExplainer
from explainers.quality import cam_quality, quality_rows
from models.registry import create_classifier
from visualisations.overlay import cam_figure

CONFIG: dict[str, Any] = {
    "dataset": "isic2017",  # or isic2016, isic2018, ph2, ham10000, derm7pt (data.layouts)
    "derm7pt_image": "derm",  # derm7pt: "derm" or "clinic"
    "data_root": DATA_ROOT,
    "split": "val",
    "every": 1,
    "limit": None,
    # each model: a label, a registry classifier, an optional checkpoint, the CAM layer and, for a
    # single-logit checkpoint, an optional "binary_target" ("melanoma" or "predicted", see explainers.cams)
    "models": [{"label": "imagenet_last", "classifier": "efficientnet_lite0", "checkpoint": None, "layer": "last"}],
    "methods": ["gradcam", "gradcam++", "eigencam", "randomcam"],  # ablationcam / scorecam: slow on CPU
    "ensemble_methods": list(DEFAULT_ENSEMBLE),  # the members of method "ensemble" (computed once, reused)
    "cam_batch_size": 64,
    "road_percentiles": [20, 40, 60, 80],  # [] skips ROAD (its imputer costs ~1 s per percentile on CPU)
    "save_heatmaps": True,
    "n_overlays": 5,
    "results_root": RESULTS_ROOT,
    "out_dir": None,
    "device": "auto",
    "seed": 0,
}

log = logging.getLogger("explainers.generate_cams")


def summarise_quality(run_dir: Path, ids: list[str]) -> pd.DataFrame:
    """Mean quality per model x method over ``ids``; a failed image counts 0 (see :func:`quality_rows`)."""
    paths = {image_id: run_dir / "records" / f"{image_id}.json" for image_id in ids}
    rows = quality_rows({i: read_json(p) for i, p in paths.items() if p.is_file()})
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    table = frame.drop(columns="image_id").groupby(["model", "method"], sort=False).mean(numeric_only=True)
    table["n_images"] = frame.groupby(["model", "method"], sort=False).size()
    return table.reset_index()


def main(argv: list[str] | None = None) -> pd.DataFrame:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    device = resolve_device(cfg["device"])
    np.random.seed(cfg["seed"])  # RandomCAM and ROAD's imputer draw from numpy's global generator
    torch.manual_seed(cfg["seed"])
    dataset = open_dataset(cfg["data_root"], cfg["split"], dataset=cfg["dataset"], derm7pt_image=cfg["derm7pt_image"])
    run_dir = resolve_run_dir(cfg["results_root"], cfg["out_dir"], "cams")
    run = ResumableRun(run_dir, cfg, {"limit", "n_overlays", "cam_batch_size"})
    explainers = {}
    for entry in cfg["models"]:
        model = create_classifier(entry["classifier"], checkpoint=entry.get("checkpoint"))
        explainers[entry["label"]] = CamExplainer(
            model,
            entry["classifier"],
            None,
            cfg["cam_batch_size"],
            device,
            layer=entry.get("layer", "last"),
            binary_target=entry.get("binary_target", "melanoma"),
            ensemble_methods=cfg["ensemble_methods"],
        )
    road = ROADCombined(percentiles=cfg["road_percentiles"]) if cfg["road_percentiles"] else None
    ids, positions = subset_ids(dataset, cfg["every"], cfg["limit"])

    def work(order: int, image_id: str) -> dict[str, Any]:
        sample = dataset[positions[image_id]]
        check_image_content(sample.image, image_id)
        quality: dict[str, dict] = {}
        for label, explainer in explainers.items():
            prepared = explainer.prepare(sample.image)  # one classifier pass serves the CAMs and ROAD
            cams = explainer.explain(sample.image, cfg["methods"], prepared)
            tensor, target, _ = prepared
            for method, cam in cams.items():
                if cfg["save_heatmaps"]:
                    write_npy(run_dir / "heatmaps" / label / method / f"{image_id}.npy", cam.heatmap.astype(np.float16))
                values = cam_quality(cam.heatmap, sample.mask) if sample.mask is not None else {}
                values["constant"] = float(cam.constant)
                if road is not None:
                    values["road"] = float(road(tensor, cam.raw[None], [target], explainer.model)[0])
                quality[f"{label}/{method}"] = values
                if order < cfg["n_overlays"]:
                    save_cam_overlay(run_dir / "overlays" / label / method / f"{image_id}.png", sample, cam, values)
        return {"quality": quality}

    run.process(ids, work, desc="cams")
    table = summarise_quality(run_dir, ids)
    write_json(
        run_dir / "metrics.json",
        {
            "summary": table.to_dict(orient="records"),
            "failures": {i: r["error"] for i in ids if (r := read_json(run.record_path(i))).get("error")},
        },
    )
    write_csv(run_dir / "metrics.csv", table)
    if not table.empty:
        print(table.to_markdown(index=False, floatfmt=".3f"))
    return table


def save_cam_overlay(path: Path, sample, cam, values: dict) -> None:
    title = (
        f"{sample.image_id} {cam.method}: pointing {values.get('pointing_game', float('nan')):.0f}, "
        f"energy {values.get('energy_pointing_game', float('nan')):.2f}"
    )
    save_figure(cam_figure(sample.image, cam.heatmap, sample.mask, title), path)


if __name__ == "__main__":
    run_main(main)
