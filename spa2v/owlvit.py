"""An optional open-vocabulary object detector (OWL-ViT family) from a local checkpoint.

``spa2v video2audio --detector DIR|tiny`` finds the objects of the picture with it
instead of the default visual tracker (:mod:`spa2v.visual`), by text queries made from
the sound-class names (or the user's labels).  Weights are never downloaded: ``DIR`` is a
local ``transformers`` directory (``OwlViTForObjectDetection`` or ``Owlv2ForObjectDetection``
with its processor), and ``tiny`` builds a random-weight model in code for tests (its
detections are meaningless, but every step runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spa2v._typing import PathType
from spa2v.errors import CheckpointError, InputError

TINY = "tiny"
_TINY_IMAGE_PX = 64
_TEXT_TOKENS = 16


@dataclass(frozen=True)
class Detection:
    """One detected object in one frame: the index of its query, a score, a box."""

    query: int
    score: float
    box: tuple[float, float, float, float]  # normalised [x1, y1, x2, y2]


def build_tiny(seed: int = 0):
    """A random-weight ``OwlViTForObjectDetection`` and its processor (CPU, float32)."""
    import torch
    from transformers import OwlViTConfig, OwlViTForObjectDetection, OwlViTProcessor

    try:
        from transformers import OwlViTImageProcessorPil as ImageProcessor
    except ImportError:  # older transformers: the one image processor
        from transformers import OwlViTImageProcessor as ImageProcessor

    from spa2v.tinytext import tiny_tokenizer

    tok = tiny_tokenizer()
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=_TEXT_TOKENS,
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, image_size=_TINY_IMAGE_PX, patch_size=16)
    torch.manual_seed(seed)
    model = OwlViTForObjectDetection(OwlViTConfig(text_config=text, vision_config=vision,
                                                  projection_dim=32)).eval()
    size = {"height": _TINY_IMAGE_PX, "width": _TINY_IMAGE_PX}
    processor = OwlViTProcessor(image_processor=ImageProcessor(size=size, crop_size=size),
                                tokenizer=tok)
    return model, processor


class OwlVitDetector:
    """Text-queried boxes per frame."""

    def __init__(self, model, processor, *, device: str | None = None) -> None:
        import torch

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.processor = processor

    @classmethod
    def load(cls, name_or_path: PathType, *, device: str | None = None) -> OwlVitDetector:
        """``"tiny"`` or a local checkpoint directory; ``CheckpointError`` names what is missing."""
        if str(name_or_path) == TINY:
            return cls(*build_tiny(), device=device)
        path = Path(name_or_path)
        if not path.is_dir():
            raise CheckpointError("is not a directory (an OWL-ViT checkpoint, or 'tiny')", path)
        missing = [f for f in ("config.json",) if not (path / f).exists()]
        if not any((path / f).exists() for f in ("model.safetensors", "pytorch_model.bin",
                                                   "model.safetensors.index.json")):
            missing.append("model.safetensors")
        if not any((path / f).exists() for f in ("preprocessor_config.json",
                                                   "processor_config.json")):
            missing.append("preprocessor_config.json")
        if missing:
            raise CheckpointError(f"incomplete OWL-ViT checkpoint: missing {', '.join(missing)}",
                                  path)
        from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor
        from transformers.utils import logging as t_logging

        t_logging.disable_progress_bar()  # one line of output per command, not a bar
        try:
            processor = AutoProcessor.from_pretrained(path, local_files_only=True)
            model = AutoModelForZeroShotObjectDetection.from_pretrained(path,
                                                                        local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"cannot load the detector: {str(exc).splitlines()[0]}",
                                  path) from exc
        return cls(model, processor, device=device)

    def save_pretrained(self, path: PathType) -> Path:
        path = Path(path)
        self.model.save_pretrained(path)
        self.processor.save_pretrained(path)
        return path

    def detect(
        self,
        frames: np.ndarray,
        queries: list[str],
        *,
        threshold: float = 0.1,
        max_per_frame: int = 4,
        batch: int = 8,
    ) -> list[list[Detection]]:
        """Detections per frame, best first, after non-maximum suppression.

        Parameters
        ----------
        frames : np.ndarray, shape (T, H, W, 3), uint8 RGB
        queries : list of str
            Text queries, e.g. ``["a photo of a car", "a photo of a dog"]``.
        threshold : float
            Minimum score.
        max_per_frame : int
        """
        import torch

        if not queries:
            raise InputError("the detector needs at least one text query")
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected frames of shape (T, H, W, 3), got {frames.shape}")
        h, w = frames.shape[1:3]
        out: list[list[Detection]] = []
        post = getattr(self.processor, "post_process_grounded_object_detection", None) or \
            self.processor.post_process_object_detection
        for start in range(0, len(frames), batch):
            chunk = list(frames[start:start + batch])
            inputs = self.processor(text=[queries] * len(chunk), images=chunk,
                                    return_tensors="pt", padding="max_length", truncation=True,
                                    max_length=min(_TEXT_TOKENS if self._tiny else 16, 77))
            inputs = {k: v.to(self.device) for k, v in inputs.items()}
            with torch.inference_mode():
                raw = self.model(**inputs)
            sizes = torch.tensor([(h, w)] * len(chunk))
            for res in post(raw, threshold=threshold, target_sizes=sizes):
                out.append(_suppress(res, w, h, max_per_frame))
        return out

    @property
    def _tiny(self) -> bool:
        return self.model.config.vision_config.image_size <= _TINY_IMAGE_PX


def _suppress(res: dict, width: int, height: int, keep: int) -> list[Detection]:
    """Greedy non-maximum suppression (IoU 0.5) over one frame's detections."""
    scores = res["scores"].detach().cpu().numpy()
    labels = res["labels"].detach().cpu().numpy()
    boxes = res["boxes"].detach().cpu().numpy() / np.array([width, height, width, height])
    boxes = np.clip(boxes, 0.0, 1.0)
    chosen: list[Detection] = []
    for i in np.argsort(-scores):
        b = boxes[i]
        if b[2] - b[0] < 1e-3 or b[3] - b[1] < 1e-3:
            continue
        if any(_iou(b, np.array(c.box)) > 0.5 for c in chosen):
            continue
        chosen.append(Detection(int(labels[i]), float(scores[i]), tuple(float(v) for v in b)))
        if len(chosen) == keep:
            break
    return chosen


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
