"""A web page for the pipeline: drop a dermoscopy image, see the CAM with its prompts,
the delivered mask, its uncertainty, the chosen source and its predicted IoU, the lesion's predicted
class (a three-class classifier); download the mask.

    python -m cam_sam.serve.app                       # http://127.0.0.1:7860
    python -m cam_sam.serve.app --set port=8080 \\
        --set classifier_checkpoints='{"melanoma": "results/classifier/best.pt"}'

It serves :class:`cam_sam.serve.service.SegmentationService`: the same pipeline as ``cam_sam.segment``,
models loaded once. An optional ground-truth mask is scored after the mask is delivered (IoU,
Dice); it never steers the result. Listens on 127.0.0.1 unless ``host`` says otherwise.
"""

from __future__ import annotations

import logging
import tempfile
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import numpy as np

from cam_sam.serve.service import SEGMENTER_PRESET, STUDENT_CHOICE, SegmentationService, ServiceResult
from cam_sam.settings import MULTICLASS_CHECKPOINT, PIPELINE_CONFIG, PRESETS, resolve_pipeline
from common.checkpoints import CheckpointError
from common.cli import run_main
from common.config import config_from_argv, merge
from common.defaults import DATA_ROOT
from common.devices import resolve_device
from common.io import write_png
from data.isic import DataError, ISICDataset, read_image, read_mask
from data.synthetic import make_synthetic_sample
from explainers.cams import EXPLAIN_METHODS

log = logging.getLogger("cam_sam.serve.app")

# fmt: off
CONFIG: dict[str, Any] = {
    "host": "127.0.0.1",                     # 0.0.0.0 exposes the page to the network: think first
    "port": 7860,
    "max_upload_mb": 20,                     # larger uploads are refused by the server
    "classifier_checkpoints": {},            # label -> classification/train.py checkpoint (besides ImageNet)
    "lesion_classifier": MULTICLASS_CHECKPOINT,   # a three-class classifier naming each lesion's class (None: none)
    "segmenter_checkpoints": {},             # medsam / sam_vit_b / ... -> the user's checkpoint file
    "examples_dir": "results/app_examples",   # generated example images are written here
    "data_root": DATA_ROOT,                  # real examples from its validation split, when present
    "n_examples": 3,
    "concurrency_limit": 1,                  # requests segmented at once (the models serve one at a time)
    "queue_size": 16,                        # requests waiting beyond that; a full queue answers "try again" at once
    "request_timeout_s": 120,                # a request still running after this is answered with a message
    **PIPELINE_CONFIG,                       # the default pipeline (cam_sam.runs.build): the "student" choice
}
# fmt: on
IMAGENET = "ImageNet weights (zero-shot)"


def make_service(cfg: dict[str, Any]) -> SegmentationService:
    """The service of the page's CONFIG: the default (preset ``student``) and, per segmenter, the
    arbiter (preset ``arbiter``) through it, resolved into typed settings here."""
    classifiers = {IMAGENET: None, **cfg["classifier_checkpoints"]}
    segmenters = {
        "LiteMedSAM": ("litemedsam", None),
        **{name: (name, path) for name, path in cfg["segmenter_checkpoints"].items()},
    }
    choices = {STUDENT_CHOICE: resolve_pipeline(merge(cfg, PRESETS[STUDENT_CHOICE]))}
    for label, (name, checkpoint) in segmenters.items():
        choices[label] = resolve_pipeline(
            merge(cfg, {**PRESETS[SEGMENTER_PRESET], "segmenter": name, "segmenter_checkpoint": checkpoint})
        )
    return SegmentationService(choices, classifiers, resolve_device(cfg["device"]), cfg["lesion_classifier"])


def example_files(cfg: dict[str, Any]) -> list[list[str]]:
    """[[image path, mask path], ...]: generated lesions, then ISIC validation images if present."""
    folder = Path(cfg["examples_dir"])
    examples = []
    for seed in range(cfg["n_examples"]):
        sample = make_synthetic_sample(seed, image_id=f"generated_{seed}")
        image, mask = folder / f"{sample.image_id}.png", folder / f"{sample.image_id}_mask.png"
        if not image.is_file():
            write_png(image, sample.image)
            write_png(mask, sample.mask.astype(np.uint8) * 255)
        examples.append([str(image), str(mask)])
    if Path(cfg["data_root"]).is_dir():
        try:
            isic = ISICDataset(cfg["data_root"], "val")
            for path in isic.image_paths[: cfg["n_examples"]]:
                examples.append([str(path), str(isic.mask_path(path.stem))])
        except DataError as exc:
            log.warning("no ISIC examples: %s", exc)
    return examples


def render(image: np.ndarray, result: ServiceResult, truth: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """(CAM with prompts, delivered mask, uncertainty) as RGB pictures."""
    from visualisations.overlay import (
        draw_cam,
        draw_mask,
        draw_prompts,
        draw_uncertainty,
        figure_to_array,
        panel_figure,
    )

    chosen = result.chosen

    def cam_panel(ax):
        draw_cam(ax, image, result.cam.heatmap if result.cam is not None else None)
        draw_prompts(ax, result.prompts)
        if chosen is not None and chosen.candidates is not None:
            draw_prompts(ax, chosen.candidates.boxes[chosen.chosen][None], color="lime")

    cam_title = f"{result.cam.method} ({result.cam.target})" if result.cam is not None else "CAM: flat (no region)"
    return (
        figure_to_array(panel_figure(cam_panel, title=cam_title)),
        figure_to_array(
            panel_figure(
                draw_mask,
                image,
                result.output.final_mask,
                truth,
                title=f"source: {result.output.final_source}" + lesion_title(result.lesion),
            )
        ),
        figure_to_array(panel_figure(draw_uncertainty, result.output.uncertainty, title="uncertainty")),
    )


def lesion_title(lesion) -> str:
    return f"; class: {lesion.name.replace('_', ' ')} ({lesion.probability:.2f})" if lesion is not None else ""


def lesion_line(lesion) -> str:
    """The classifier's call in words: the class, its probability, the other classes'."""
    others = ", ".join(f"{k.replace('_', ' ')} {v:.2f}" for k, v in lesion.probabilities.items() if k != lesion.name)
    return (
        f"- predicted class: **{lesion.name.replace('_', ' ')}** (probability **{lesion.probability:.2f}**; "
        f"{others}; a three-class classifier, not a diagnosis)"
    )


def verdict_words(trust) -> str:
    """ "looks reliable", "please review", or, for an image unlike the student's training images
    (:mod:`cam_sam.depth`), "out of its depth"."""
    if trust.out_of_depth:
        return "out of its depth"
    return "please review" if trust.flagged else "looks reliable"


def verdict(trust) -> str:
    """The plain verdict on a delivered mask: "looks reliable", "please review: <reason>", or
    "out of its depth: <what to do>"."""
    text = f"{verdict_words(trust)}: {trust.reason}" if trust.flagged else "looks reliable"
    if trust.expected_iou is not None:
        return (
            f"expected IoU **{trust.expected_iou:.2f}** (confidence {trust.confidence:.2f}, mapped on images "
            f"with known masks): **{text}**"
        )
    return f"confidence **{trust.confidence:.2f}**: **{text}**"


def summary(result: ServiceResult, name: str) -> str:
    """The markdown beside the pictures: the verdict and confidence, chosen source, predicted IoU,
    optional IoU / Dice."""
    out = result.output
    if out.final_mask is None:
        errors = "; ".join(f"{s}: {o.error}" for s, o in out.sources.items() if o.error)
        return f"**No mask for {name}**: no prompt source produced one ({errors})."
    chosen = result.chosen
    score_name = "the student's own score (soft IoU)" if out.final_source == "student" else "predicted IoU"
    lines = [
        f"**{name}** segmented in {result.seconds:.1f} s",
        f"- chosen source: **{out.final_source}**",
        f"- {score_name}: **{chosen.score:.3f}** (selection score {chosen.selection_score:.3f})"
        if chosen is not None
        else "- predicted IoU: n/a (no source's own mask)",
        f"- mask area: {100 * out.final_mask.mean():.1f} % of the image",
    ]
    if out.trust is not None:
        lines.insert(1, f"- {verdict(out.trust)}")
    if result.lesion is not None:
        lines.insert(2, lesion_line(result.lesion))
    if result.metrics is not None:
        lines.append(
            f"- against your ground truth: IoU **{result.metrics['iou']:.3f}**, "
            f"Dice **{result.metrics['dice']:.3f}** (scored after the fact; it did not steer the mask)"
        )
    return "\n".join(lines)


def api_answer(result: ServiceResult, name: str) -> dict[str, Any]:
    """The JSON-able description of a delivered mask that the ``/segment`` endpoint returns."""
    out = result.output
    info: dict[str, Any] = {
        "image": name,
        "seconds": round(result.seconds, 3),
        "source": out.final_source,
        "mask_area": float(out.final_mask.mean()) if out.final_mask is not None else None,
    }
    if out.trust is not None:
        info.update(
            {
                "confidence": round(out.trust.confidence, 4),
                "flagged": out.trust.flagged,
                "reason": out.trust.reason,
                "verdict": verdict_words(out.trust),
                "out_of_depth": bool(out.trust.out_of_depth),
                "expected_iou": None if out.trust.expected_iou is None else round(out.trust.expected_iou, 3),
            }
        )
    chosen = result.chosen
    if chosen is not None:
        info["predicted_iou"] = round(chosen.score, 4)
    if result.lesion is not None:
        info.update(
            {
                "class": result.lesion.name,
                "class_probability": round(result.lesion.probability, 4),
                "class_probabilities": {k: round(v, 4) for k, v in result.lesion.probabilities.items()},
            }
        )
    return info


def run_with_timeout(fn, timeout_s: float):
    """``fn()``'s result, or raise :class:`TimeoutError` after ``timeout_s`` (the work itself
    finishes in the background: the models are not interrupted mid-pass)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(fn)
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout:
            pool.shutdown(wait=False, cancel_futures=True)
            raise TimeoutError(f"the request took longer than request_timeout_s={timeout_s:g} s") from None


def segment_file(
    service: SegmentationService, image_file, truth_file, classifier: str, method: str, segmenter: str, timeout_s: float
) -> tuple[ServiceResult | None, np.ndarray | None, np.ndarray | None, str, str | None]:
    """(result, image, truth, name, error message) of one request: the code the page and the
    ``/segment`` endpoint share."""
    name = Path(image_file).name if image_file else "image"
    try:
        if not image_file:
            raise DataError("upload an image first (or pick an example)")
        image = read_image(image_file)
        truth = read_mask(truth_file) if truth_file else None
        result = run_with_timeout(
            lambda: service.segment(image, classifier, method, segmenter, truth, name=name), timeout_s
        )
        return result, image, truth, name, None
    except (DataError, CheckpointError, ValueError, TimeoutError) as exc:
        return None, None, None, name, f"**Could not segment {name}**: {exc}"
    except Exception as exc:  # noqa: BLE001 - the page must keep serving
        log.exception("request failed")
        return None, None, None, name, f"**Internal error on {name}**: {type(exc).__name__}: {exc}"


def write_mask_file(result: ServiceResult, name: str) -> str | None:
    if result.output.final_mask is None:
        return None
    path = Path(tempfile.mkdtemp(prefix="cam_sam_")) / f"{Path(name).stem}_mask.png"
    write_png(path, result.output.final_mask.astype(np.uint8) * 255)
    return str(path)


def preview_image(image_file) -> np.ndarray | None:
    """The uploaded image as the page shows it before segmenting (None when unreadable or absent)."""
    if not image_file:
        return None
    try:
        return read_image(image_file)
    except DataError:
        return None


def make_api(service: SegmentationService, timeout_s: float = 120):
    """The ``/segment`` endpoint: (image file, classifier, method, segmenter) -> (delivered mask as
    a PNG file or None, :func:`api_answer` or ``{"error": message}``)."""

    def segment(image_file, classifier: str = IMAGENET, method: str = "gradcam", segmenter: str = STUDENT_CHOICE):
        result, _, _, name, error = segment_file(service, image_file, None, classifier, method, segmenter, timeout_s)
        if error is not None:
            return None, {"image": name, "error": error.replace("**", "")}
        return write_mask_file(result, name), api_answer(result, name)

    return segment


def make_handler(service: SegmentationService, timeout_s: float = 120):
    def handle(image_file, truth_file, classifier: str, method: str, segmenter: str):
        result, image, truth, name, error = segment_file(
            service, image_file, truth_file, classifier, method, segmenter, timeout_s
        )
        if error is not None:
            return error, None, None, None, None
        return summary(result, name), *render(image, result, truth), write_mask_file(result, name)

    return handle


def build_page(service: SegmentationService, cfg: dict[str, Any]):
    import gradio as gr

    with gr.Blocks(title="Skin-lesion segmentation without pixel labels") as page:
        gr.Markdown(
            "## Skin-lesion segmentation without pixel labels\nA student segmenter self-trained on "
            "the classifier's backbone delivers the mask; choose a segmenter to let the classifier's CAM "
            "and colour cues prompt it instead. No pixel label was used to build either. "
            "Not a medical device."
        )
        with gr.Row():
            with gr.Column(scale=1):
                image_file = gr.File(label="dermoscopy image", file_types=["image"], elem_id="image-upload")
                preview = gr.Image(label="the uploaded image", elem_id="preview", interactive=False, height=220)
                truth_file = gr.File(
                    label="ground-truth mask (optional, only scored)", file_types=["image"], elem_id="truth-upload"
                )
                classifier = gr.Dropdown(list(service.classifiers), value=IMAGENET, label="classifier")
                method = gr.Dropdown(EXPLAIN_METHODS, value="gradcam", label="CAM method (lrp: relevance propagation)")
                segmenter = gr.Dropdown(
                    service.segmenter_choices,
                    value=service.segmenter_choices[0],
                    label=f"segmenter ('{STUDENT_CHOICE}': the self-trained student alone, the default; "
                    "a segmenter: its arbiter with the teacher)",
                )
                run = gr.Button("Segment", variant="primary", elem_id="run")
                gr.Examples(example_files(cfg), inputs=[image_file, truth_file], label="examples (image, mask)")
            with gr.Column(scale=2):
                status = gr.Markdown("Upload an image and press **Segment**.", elem_id="status")
                with gr.Row():
                    cam_view = gr.Image(
                        label="CAM; white: its box prompts, green: the chosen prompt", elem_id="cam", interactive=False
                    )
                    mask_view = gr.Image(
                        label="delivered mask (green), ground truth (red)", elem_id="mask", interactive=False
                    )
                    uncertainty_view = gr.Image(
                        label="uncertainty: per-pixel std (the student's own when it "
                        "delivers alone; else the competing masks')",
                        elem_id="uncertainty",
                        interactive=False,
                    )
                download = gr.File(label="mask PNG", elem_id="download", interactive=False)
        image_file.change(preview_image, image_file, preview, api_name=False)
        limits = {"concurrency_limit": int(cfg["concurrency_limit"]), "concurrency_id": "models"}
        timeout = float(cfg["request_timeout_s"])
        run.click(
            make_handler(service, timeout),
            [image_file, truth_file, classifier, method, segmenter],
            [status, cam_view, mask_view, uncertainty_view, download],
            api_name="page",
            **limits,
        )
        # the programmatic endpoint: Client(url).predict(handle_file(path), api_name="/segment")
        api_image = gr.File(visible=False)
        api_mask, api_info = gr.File(visible=False), gr.JSON(visible=False)
        gr.Button(visible=False).click(
            make_api(service, timeout),
            [api_image, classifier, method, segmenter],
            [api_mask, api_info],
            api_name="segment",
            **limits,
        )
    page.queue(max_size=int(cfg["queue_size"]))  # a full queue answers at once: "Queue is full! Please try again."
    return page


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = config_from_argv(CONFIG, argv, description=__doc__.splitlines()[0])
    service = make_service(cfg)
    log.info("loading the default models")
    service.pipeline(IMAGENET, "gradcam", service.segmenter_choices[0])
    page = build_page(service, cfg)
    page.launch(
        server_name=cfg["host"],
        server_port=int(cfg["port"]),
        max_file_size=f"{cfg['max_upload_mb']}mb",
        show_error=True,
    )


if __name__ == "__main__":
    run_main(main)
