"""The ``diffusion`` video generator: VSL -> layout-grounded diffusion frames -> MP4.

The sampler runs at the model's own scale: ``num_frames`` frames (the model's native
count) at a size of the model's native area with the output's aspect ratio, rounded to
what the UNet divides evenly. The generated frames are spread over the clip: the first
shows the first output frame's time, the last the last one's, and each output frame at
``i / fps`` is the linear blend of the two generated frames around its time, resized to
the output size. The boxes the sampler is guided by are the layout's at the generated
frames' times, so objects stay in their boxes after resizing and blending.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from spa2v._typing import PathType
from spa2v.errors import InputError
from spa2v.fsutil import check_output
from spa2v.layout import SceneLayout, as_layout

from .loading import PRESETS, check_checkpoint, pick_device, torch_dtype

if TYPE_CHECKING:
    from .sampler import SamplerConfig

MODEL_NEEDED = "the diffusion generator needs --model DIR|tiny"


def sampler_size(
    out_size: tuple[int, int], native_size: tuple[int, int], multiple: int
) -> tuple[int, int]:
    """(width, height) with the native area, the output's aspect ratio, and both sides
    multiples of ``multiple`` (at least one multiple)."""
    out_w, out_h = out_size
    area = float(native_size[0] * native_size[1])
    w = math.sqrt(area * out_w / out_h)
    h = area / w
    return (
        max(multiple, int(round(w / multiple)) * multiple),
        max(multiple, int(round(h / multiple)) * multiple),
    )


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)


class DiffusionRenderer:
    """VSL -> layout-grounded text-to-video diffusion -> MP4 (with the original audio).

    Parameters
    ----------
    model : str or path
        ``tiny`` (``tiny-animatediff``) or a local diffusers checkpoint directory.
    guidance : str, optional
        ``energy`` (default), ``mask`` or ``none``.
    steps : int, optional
        Denoising steps (default 40).
    device : str, optional
        Default: ``cuda`` when present, else ``cpu``.
    dtype : str, optional
        ``float32``, ``float16`` or ``bfloat16``; default float16 on CUDA, float32 on CPU.
    cpu_offload : bool
        Keep the networks in CPU memory between uses (accelerate hooks; CUDA only).
    config : SamplerConfig, optional
        Every other sampler setting (frame count, sampler size, guidance details);
        ``guidance`` and ``steps`` override its fields when given.
    """

    name = "diffusion"

    def __init__(
        self,
        model: PathType,
        *,
        guidance: str | None = None,
        steps: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        cpu_offload: bool = False,
        config: SamplerConfig | None = None,
    ) -> None:
        from .sampler import SamplerConfig

        if model is None or str(model).strip() == "":
            raise InputError(MODEL_NEEDED)
        self.model = str(model)
        if self.model not in PRESETS:
            check_checkpoint(self.model)
        cfg = dataclasses.replace(config) if config is not None else SamplerConfig()
        if guidance is not None:
            cfg.guidance = guidance
        if steps is not None:
            cfg.steps = int(steps)
        cfg.check()
        self.config = cfg
        self.device = pick_device(device)
        self.dtype = torch_dtype(dtype, self.device)
        self.cpu_offload = bool(cpu_offload)
        self._sampler = None

    @classmethod
    def from_options(cls, opts) -> DiffusionRenderer:
        """Build from ``spa2v.pipeline.RenderOptions`` (its ``model``, ``guidance``,
        ``steps``, ``device``, ``dtype`` and ``cpu_offload`` fields)."""
        model = getattr(opts, "model", None)
        if not model:
            raise InputError(MODEL_NEEDED)
        return cls(
            model,
            guidance=getattr(opts, "guidance", None),
            steps=getattr(opts, "steps", None),
            device=getattr(opts, "device", None),
            dtype=getattr(opts, "dtype", None),
            cpu_offload=bool(getattr(opts, "cpu_offload", False)),
        )

    @property
    def sampler(self):
        """The :class:`~.sampler.LayoutSampler`, loaded on first use."""
        if self._sampler is None:
            from .loading import load_components
            from .sampler import LayoutSampler

            comps = load_components(self.model, dtype=self.dtype)
            self._sampler = LayoutSampler(
                comps, device=self.device, dtype=self.dtype, cpu_offload=self.cpu_offload
            )
        return self._sampler

    def frames(
        self,
        layout: SceneLayout | dict | PathType,
        *,
        fps: int = 24,
        size: tuple[int, int] = (512, 288),
        seed: int = 0,
        overlay: bool = False,
        progress: bool = False,
    ) -> Iterator[np.ndarray]:
        """Sample the layout, then yield ``round(duration * fps)`` output frames.

        Yields
        ------
        np.ndarray, shape (H, W, 3), uint8 RGB
        """
        layout = as_layout(layout)
        width, height = (int(v) for v in size)
        if width < 16 or height < 16:
            raise InputError(f"frame size {width}x{height} is too small (at least 16x16)")
        if not fps > 0:
            raise InputError(f"fps must be positive, got {fps}")
        sampler = self.sampler
        comps = sampler.components
        from .conditioning import sampler_times

        cfg = dataclasses.replace(self.config)
        n_gen = int(cfg.num_frames or comps.native_frames)
        if cfg.size_px is None:
            multiple = comps.vae_scale_factor * comps.unet_downsample_factor
            cfg.size_px = sampler_size((width, height), comps.native_size_px, multiple)
        times_gen = sampler_times(layout.duration, fps, n_gen)
        out = sampler.sample(layout, cfg, seed=seed, times_s=times_gen, progress=progress)
        interp = cv2.INTER_AREA if out.frames.shape[2] > width else cv2.INTER_CUBIC
        gen = [cv2.resize(f, (width, height), interpolation=interp) for f in out.frames]
        times_out = layout.frame_times(fps)
        t_last = float(times_gen[-1])
        for t in times_out:
            pos = 0.0 if t_last <= 0 else float(np.clip(t / t_last, 0.0, 1.0)) * (n_gen - 1)
            i0 = int(math.floor(pos))
            i1 = min(i0 + 1, n_gen - 1)
            w = pos - i0
            frame = _to_uint8((1.0 - w) * gen[i0] + w * gen[i1])
            if overlay:
                _draw_overlay(frame, layout, float(t))
            yield frame

    def render(
        self,
        layout: SceneLayout | dict | PathType,
        out_path: PathType,
        *,
        audio: tuple[np.ndarray, int] | None = None,
        fps: int = 24,
        size: tuple[int, int] = (512, 288),
        seed: int = 0,
        overlay: bool = False,
        overwrite: bool = False,
        progress: bool = False,
    ) -> Path:
        """Render a layout to an MP4 (H.264, with the audio as AAC when given).

        Same contract as :meth:`generators.video.animatic.AnimaticRenderer.render`; the
        output is checked before any sampling, and written atomically.
        """
        from spa2v.video import write_mp4

        check_output(out_path, overwrite=overwrite)
        layout = as_layout(layout)
        frames = self.frames(
            layout, fps=fps, size=size, seed=seed, overlay=overlay, progress=progress
        )
        y, sr = audio if audio is not None else (None, None)
        return write_mp4(out_path, frames, fps=fps, size=size, audio=y, sr=sr, overwrite=overwrite)


def _draw_overlay(frame: np.ndarray, layout: SceneLayout, t: float) -> None:
    """Each visible object's box with an ``id: name`` tag, and the keyframe caption (the
    animatic's debug overlay)."""
    from generators.video.animatic import caption_index, draw_box, draw_caption, object_color

    h, w = frame.shape[:2]
    scale = max(0.3, 0.36 * h / 288)
    for i, obj in enumerate(layout.objects):
        boxes, visible = layout.track(obj.id, [t])
        if visible[0]:
            draw_box(frame, boxes[0] * [w, h, w, h], f"{obj.id}: {obj.name}",
                     object_color(i), scale)
    caption = layout.frames[caption_index(layout.keyframe_times, t)].caption or layout.caption
    draw_caption(frame, f"{t:5.2f}s  {caption}", scale)
