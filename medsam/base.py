"""The promptable-segmenter base class: expensive image encoding separated from cheap decoding.

Coordinate frames: prompts given to :meth:`PromptableSegmenter.predict` are in ORIGINAL image
pixels, ``x`` to the right and ``y`` down, boxes as ``(x0, y0, x1, y1)``. A :class:`ResizeFrame`
maps them into the model's square input and maps mask logits back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from medsam.embedding_cache import EmbeddingCache, image_key
from medsam.runtime import OnnxExport, Runner, load_runner, resolve_backend


@dataclass(frozen=True)
class ResizeFrame:
    """How an (H, W) image sits in the model's (S, S) input: scaled by ``(sx, sy)`` into the
    top-left ``resized_hw`` region, the rest zero padding."""

    original_hw: tuple[int, int]
    resized_hw: tuple[int, int]
    input_size: int

    @classmethod
    def longest_side(cls, hw: tuple[int, int], size: int) -> ResizeFrame:
        """Aspect kept: the longer side becomes ``size`` (SAM, LiteMedSAM)."""
        scale = size / max(hw)
        return cls(tuple(hw), (int(hw[0] * scale + 0.5), int(hw[1] * scale + 0.5)), size)

    @classmethod
    def stretch(cls, hw: tuple[int, int], size: int) -> ResizeFrame:
        """Aspect not kept: the image is resized to (size, size) (MedSAM ViT-B)."""
        return cls(tuple(hw), (size, size), size)

    @property
    def scale_xy(self) -> tuple[float, float]:
        return self.resized_hw[1] / self.original_hw[1], self.resized_hw[0] / self.original_hw[0]

    def apply_coords(self, coords: np.ndarray) -> np.ndarray:
        """(..., 2) xy in original pixels -> model input pixels."""
        sx, sy = self.scale_xy
        out = np.asarray(coords, dtype=np.float32).copy()
        out[..., 0] *= sx
        out[..., 1] *= sy
        return out

    def apply_boxes(self, boxes: np.ndarray) -> np.ndarray:
        """(B, 4) xyxy in original pixels -> model input pixels."""
        return self.apply_coords(np.asarray(boxes, dtype=np.float32).reshape(-1, 2, 2)).reshape(-1, 4)

    def logits_to_original(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, 1, h, w) low-resolution logits covering the (S, S) input -> (B, H, W) logits."""
        size = self.input_size
        if logits.shape[-2:] != (size, size):
            logits = F.interpolate(logits, (size, size), mode="bilinear", align_corners=False)
        logits = logits[..., : self.resized_hw[0], : self.resized_hw[1]]
        return F.interpolate(logits, self.original_hw, mode="bilinear", align_corners=False)[:, 0]


@dataclass
class Prediction:
    """``masks``: (B, H, W) bool; ``scores``: (B,) the model's predicted IoU of each mask."""

    masks: np.ndarray
    scores: np.ndarray


class BoxDecoder(torch.nn.Module):
    """The prompt encoder and mask decoder for box prompts only, as one exportable module:
    ((1, C, h, w) image embedding, (B, 4) xyxy boxes in the model's input frame) ->
    ((B, 1, h', w') low-resolution mask logits, (B, 1) predicted IoU)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.prompt_encoder, self.mask_decoder = model.prompt_encoder, model.mask_decoder

    def forward(self, embedding: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sparse, dense = self.prompt_encoder(points=None, boxes=boxes, masks=None)
        return self.mask_decoder(
            image_embeddings=embedding,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=False,
        )


class PromptableSegmenter(ABC):
    """A SAM-family model (``image_encoder``, ``prompt_encoder``, ``mask_decoder``) behind one API.

    Subclasses override :meth:`preprocess` only: the authors' resize and intensity scaling, and
    set ``input_size`` (the side of the square model input).
    """

    name = "segmenter"
    input_size = 1024
    RESIZE = "longest_side"  # how preprocess fits an image: "longest_side" (aspect kept, padded) or "stretch"

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu", batch_size: int = 64) -> None:
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.batch_size = batch_size
        self._embedding: torch.Tensor | None = None
        self._frame: ResizeFrame | None = None
        self.cache: EmbeddingCache | None = None  # optional disk cache of embeddings (see use_cache)
        self._model_tag = ""
        self.backend = "torch"  # see use_backend
        self._encoder_runner: Runner | None = None
        self._decoder_runner: Runner | None = None

    def use_cache(self, folder: str | Path | None, model_tag: str) -> None:
        """Store and reuse image embeddings in ``folder`` (None: no cache). ``model_tag`` names the
        weights (the cache key includes it, and the backend), e.g. the checkpoint path."""
        self.cache = EmbeddingCache(folder) if folder else None
        self._model_tag = model_tag

    @property
    def _cache_tag(self) -> str:
        return f"{type(self).__name__}|{self._model_tag}|{self.backend}"

    def use_backend(self, backend: str, export_dir: str | Path) -> str:
        """Run the image encoder and the box decoder with ``backend`` (:mod:`medsam.runtime`:
        ``torch``, ``onnxruntime``, ``openvino`` or ``auto``), exporting them to ``export_dir``
        once. Point prompts always decode in torch. Returns the backend chosen."""
        self.backend = resolve_backend(backend, self.device)
        self._encoder_runner = self._decoder_runner = None
        if self.backend == "torch":
            return self.backend
        size = self.input_size
        pe = self.model.prompt_encoder
        encoder = OnnxExport(
            export_dir,
            f"{self.name}-encoder",
            self.model.image_encoder,
            (torch.zeros(1, 3, size, size),),
            (["image"], ["embedding"]),
        )
        boxes = torch.tensor([[0.0, 0.0, size / 2, size / 2], [size / 4, size / 4, size, size]])
        decoder = OnnxExport(
            export_dir,
            f"{self.name}-box-decoder",
            BoxDecoder(self.model),
            (torch.zeros(1, pe.embed_dim, *pe.image_embedding_size), boxes),
            (["embedding", "boxes"], ["low_res", "iou"]),
            {"boxes": {0: "B"}, "low_res": {0: "B"}, "iou": {0: "B"}},
        )
        self._encoder_runner = load_runner(self.backend, encoder)
        self._decoder_runner = load_runner(self.backend, decoder)
        return self.backend

    def encode(self, tensor: torch.Tensor) -> torch.Tensor:
        """(1, 3, S, S) model input -> (1, C, h, w) image embedding, with the chosen backend."""
        if self._encoder_runner is None:
            return self.model.image_encoder(tensor.to(self.device))
        return torch.from_numpy(self._encoder_runner(image=tensor.numpy())[0])

    @abstractmethod
    def preprocess(self, image: np.ndarray) -> tuple[torch.Tensor, ResizeFrame]:
        """(H, W, 3) uint8 RGB -> ((1, 3, S, S) float tensor, its frame)."""

    def frame_of(self, image: np.ndarray) -> ResizeFrame:
        """The frame :meth:`preprocess` places ``image`` in (without computing the tensor): its
        longest side scaled to the input size, or, with ``RESIZE = "stretch"``, both sides."""
        if self.RESIZE == "stretch":
            return ResizeFrame.stretch(image.shape[:2], self.input_size)
        return ResizeFrame.longest_side(image.shape[:2], self.input_size)

    @torch.no_grad()
    def set_image(self, image: np.ndarray) -> None:
        """Encode ``image`` (H, W, 3) uint8 RGB once; later :meth:`predict` calls reuse it."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        key = image_key(image, self._cache_tag) if self.cache is not None else None
        cached = self.cache.get(key) if key is not None else None
        if cached is not None:
            self._embedding = cached.to(self.device)
            self._frame = self.frame_of(image)
            return
        tensor, frame = self.preprocess(image)
        self._embedding = self.encode(tensor)
        self._frame = frame
        if key is not None:
            self.cache.put(key, self._embedding)

    @property
    def frame(self) -> ResizeFrame:
        if self._frame is None:
            raise RuntimeError("call set_image() before predict()")
        return self._frame

    @torch.no_grad()
    def predict(
        self, boxes: np.ndarray | None = None, points: np.ndarray | None = None, point_labels: np.ndarray | None = None
    ) -> Prediction:
        """Decode B prompts against the cached embedding.

        ``boxes``: (B, 4) xyxy; ``points``: (B, N, 2) xy with ``point_labels`` (B, N), 1 for
        foreground and 0 for background. All in original image pixels. Either or both.
        """
        frame = self.frame
        if boxes is None and points is None:
            raise ValueError("predict() needs boxes, points or both")
        n = len(boxes) if boxes is not None else len(points)
        if points is not None and (point_labels is None or np.shape(point_labels) != np.shape(points)[:2]):
            raise ValueError("point_labels must be given with shape (B, N) matching points (B, N, 2)")
        masks, scores = [], []
        for start in range(0, n, self.batch_size):
            chunk = slice(start, min(n, start + self.batch_size))
            chunk_boxes = None if boxes is None else frame.apply_boxes(np.asarray(boxes)[chunk])
            if points is None and self._decoder_runner is not None:
                low_res, iou = (
                    torch.from_numpy(a)
                    for a in self._decoder_runner(embedding=self._embedding.numpy(), boxes=chunk_boxes)
                )
            else:
                chunk_points = None
                if points is not None:
                    chunk_points = (frame.apply_coords(np.asarray(points)[chunk]), np.asarray(point_labels)[chunk])
                low_res, iou = self._decode_torch(chunk_boxes, chunk_points)
            logits = frame.logits_to_original(low_res.float())
            masks.append((logits > 0).cpu().numpy())
            scores.append(iou[:, 0].float().cpu().numpy())
        return Prediction(np.concatenate(masks), np.concatenate(scores))

    def _decode_torch(self, boxes: np.ndarray | None, points: tuple[np.ndarray, np.ndarray] | None):
        """(low-res logits (B, 1, h, w), predicted IoU (B, 1)) of prompts already in the input frame."""
        box_t = None if boxes is None else torch.as_tensor(boxes, device=self.device)
        point_t = None
        if points is not None:
            point_t = (
                torch.as_tensor(points[0], device=self.device),
                torch.as_tensor(points[1], dtype=torch.int64, device=self.device),
            )
        sparse, dense = self.model.prompt_encoder(points=point_t, boxes=box_t, masks=None)
        # Points without a box are ambiguous: as SAM's authors advise, decode the three masks
        # and keep the one with the highest predicted IoU.
        multimask = box_t is None
        low_res, iou = self.model.mask_decoder(
            image_embeddings=self._embedding,
            image_pe=self.model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        if multimask:
            best = iou.argmax(dim=1, keepdim=True)
            low_res = low_res.gather(1, best[..., None, None].expand(-1, -1, *low_res.shape[-2:]))
            iou = iou.gather(1, best)
        return low_res, iou


def min_max_scale(image: np.ndarray) -> np.ndarray:
    """Per-image min-max scaling to [0, 1] (MedSAM and LiteMedSAM's intensity normalisation)."""
    image = image.astype(np.float32)
    return (image - image.min()) / max(float(image.max() - image.min()), 1e-8)


def to_padded_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """(h, w, 3) float -> (1, 3, size, size), zero-padded at the bottom and right."""
    tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().unsqueeze(0)
    return F.pad(tensor, (0, size - tensor.shape[-1], 0, size - tensor.shape[-2]))
