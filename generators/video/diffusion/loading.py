"""Checkpoint loading: a local diffusers text-to-video directory (or ``tiny``) -> components.

A checkpoint is a directory in the diffusers layout (what ``save_pretrained`` writes)::

    model_index.json
    unet/config.json            + diffusion_pytorch_model[.fp16].safetensors (or .bin)
    vae/config.json             + diffusion_pytorch_model[.fp16].safetensors
    text_encoder/config.json    + model[.fp16].safetensors (or pytorch_model.bin)
    tokenizer/vocab.json + merges.txt  (or tokenizer.json)
    scheduler/scheduler_config.json
    motion_adapter/...          only for AnimateDiff with a Stable Diffusion 1.5 UNet
    spa2v_sampler.json          optional: {"width": 576, "height": 320, "num_frames": 24}

Backbones: a ``UNet3DConditionModel`` (the ModelScope text-to-video layout, Zeroscope),
or AnimateDiff: a ``UNetMotionModel``, or a ``UNet2DConditionModel`` with a
``motion_adapter/`` beside it, joined with ``UNetMotionModel.from_unet2d``. Nothing is ever
downloaded: everything loads with ``local_files_only=True``. A missing or incomplete
directory raises :class:`spa2v.errors.CheckpointError` (exit 2) naming every missing
file at once.

The size and frame count a model was trained at are not in diffusers' files; without
``spa2v_sampler.json`` they are taken as the UNet's ``sample_size`` times the VAE's
factor (256 x 256 for ModelScope) and 16 frames. :func:`save_components` writes the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spa2v._typing import PathType
from spa2v.errors import CheckpointError, InputError

PRESETS = ("tiny", "tiny-animatediff", "tiny4", "tiny4-animatediff")
"""``--model`` names that build a tiny random-weight model (:mod:`.tiny`) instead of
loading a directory; ``tiny4``: with the four resolution levels of the real models."""
BACKBONES = ("unet3d", "animatediff")
SAMPLER_FILE = "spa2v_sampler.json"
DTYPES = ("float32", "float16", "bfloat16")

_DIFFUSERS_WEIGHTS = "diffusion_pytorch_model"
_TRANSFORMERS_WEIGHTS = ("model", "pytorch_model")
_UNET_BACKBONE = {
    "UNet3DConditionModel": "unet3d",
    "UNetMotionModel": "animatediff",
    "UNet2DConditionModel": "animatediff",
}


@dataclass
class Components:
    """The parts of a text-to-video diffusion model, as diffusers and transformers objects."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    backbone: str
    """``"unet3d"`` (ModelScope, Zeroscope) or ``"animatediff"`` (UNetMotionModel)."""
    motion_adapter: Any = None
    native_size_px: tuple[int, int] = (256, 256)
    """(width, height) the model was trained at; the sampler keeps its area."""
    native_frames: int = 16
    source: str = ""
    """``tiny`` or the checkpoint directory."""
    offload_hooks: list = field(default_factory=list)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def unet_downsample_factor(self) -> int:
        return 2 ** (len(self.unet.config.block_out_channels) - 1)

    @property
    def dtype(self):
        return self.unet.dtype

    def to(self, device, dtype=None) -> Components:
        """Move (and cast) the three networks; returns self."""
        for module in (self.unet, self.vae, self.text_encoder):
            if dtype is not None and module.dtype != dtype:
                module.to(device=device, dtype=dtype)
            else:
                module.to(device=device)
        return self

    def enable_cpu_offload(self, device) -> None:
        """Keep the networks on the CPU and move each to ``device`` only while it runs
        (accelerate's ``cpu_offload_with_hook``: text encoder -> UNet -> VAE)."""
        from accelerate import cpu_offload_with_hook

        hook = None
        self.offload_hooks = []
        for module in (self.text_encoder, self.unet, self.vae):
            _, hook = cpu_offload_with_hook(module, device, prev_module_hook=hook)
            self.offload_hooks.append(hook)


# --------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class CheckpointInfo:
    """What :func:`check_checkpoint` found in a directory."""

    path: Path
    backbone: str
    unet_class: str
    variants: dict[str, str | None]
    """Per component folder, the weight variant to load (``"fp16"``) or None."""
    has_motion_adapter: bool


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path.name}: {exc}", path) from exc


def _weights_variant(folder: Path, stems: tuple[str, ...]) -> tuple[bool, str | None]:
    """Whether ``folder`` holds weights named ``stem[.variant].(safetensors|bin)`` (or a
    sharded index), and the variant to load (None for the plain files)."""
    if not folder.is_dir():
        return False, None
    names = [p.name for p in folder.iterdir()]
    for stem in stems:
        for ext in ("safetensors", "bin"):
            if f"{stem}.{ext}" in names or f"{stem}.{ext}.index.json" in names:
                return True, None
    for stem in stems:
        for name in sorted(names):
            parts = name.split(".")
            if len(parts) >= 3 and parts[0] == stem and parts[-1] in ("safetensors", "bin"):
                return True, parts[1]
            if len(parts) >= 5 and parts[0] == stem and parts[-2:] == ["index", "json"]:
                return True, parts[1]
    return False, None


def check_checkpoint(path: PathType) -> CheckpointInfo:
    """Validate a checkpoint directory without loading any weights.

    Raises
    ------
    CheckpointError
        The directory is missing, or lacks any of the files listed in the module
        docstring (all missing files are named in one message), or its UNet is of a
        class the sampler does not drive.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise CheckpointError("no such checkpoint directory", root)
    if not root.is_dir():
        raise CheckpointError("is not a checkpoint directory (a diffusers model folder)", root)
    missing: list[str] = []
    variants: dict[str, str | None] = {}

    def need_file(rel: str) -> bool:
        if not (root / rel).is_file():
            missing.append(rel)
            return False
        return True

    def need_weights(folder: str, stems: tuple[str, ...]) -> None:
        found, variant = _weights_variant(root / folder, stems)
        variants[folder] = variant
        if not found:
            missing.append(f"{folder}/{stems[0]}.safetensors")

    need_file("model_index.json")
    unet_class = ""
    unet_config: dict = {}
    if need_file("unet/config.json"):
        unet_config = _read_json(root / "unet/config.json")
        unet_class = str(unet_config.get("_class_name", ""))
    need_weights("unet", (_DIFFUSERS_WEIGHTS,))
    need_file("vae/config.json")
    need_weights("vae", (_DIFFUSERS_WEIGHTS,))
    need_file("text_encoder/config.json")
    need_weights("text_encoder", _TRANSFORMERS_WEIGHTS)
    tok = root / "tokenizer"
    if not (tok / "tokenizer.json").is_file():
        for name in ("vocab.json", "merges.txt"):
            need_file(f"tokenizer/{name}")
    need_file("scheduler/scheduler_config.json")
    has_adapter = (root / "motion_adapter").is_dir()
    if unet_class == "UNet2DConditionModel":
        if need_file("motion_adapter/config.json"):
            need_weights("motion_adapter", (_DIFFUSERS_WEIGHTS,))
        if not has_adapter:
            missing[-1] = (
                "motion_adapter/config.json (an image UNet needs an AnimateDiff motion adapter)"
            )
    if missing:
        raise CheckpointError(
            "incomplete diffusers checkpoint; missing " + ", ".join(missing), root
        )
    if unet_class not in _UNET_BACKBONE:
        raise CheckpointError(
            f"unet/config.json: UNet class {unet_class or '(none)'} is not supported "
            f"(expected one of {', '.join(_UNET_BACKBONE)})",
            root,
        )
    if unet_config.get("addition_embed_type") or (root / "text_encoder_2").is_dir():
        raise CheckpointError(
            "SDXL-type checkpoints (a second text encoder, added time embeddings) are not "
            "supported; use a ModelScope/Zeroscope or a Stable Diffusion 1.5 AnimateDiff model",
            root,
        )
    return CheckpointInfo(root, _UNET_BACKBONE[unet_class], unet_class, variants, has_adapter)


# --------------------------------------------------------------------------- loading
def torch_dtype(name: str | None, device: str):
    """``"float16"`` etc. -> torch dtype; None picks float16 on CUDA and float32 elsewhere."""
    import torch

    if name is None:
        return torch.float16 if str(device).startswith("cuda") else torch.float32
    if name not in DTYPES:
        raise InputError(f"--dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return getattr(torch, name)


def pick_device(name: str | None) -> str:
    """``None`` -> ``"cuda"`` when present, else ``"cpu"``; a named device is checked."""
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"--device {name!r} is not a torch device") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: CUDA is not available on this machine")
    return str(dev)


def load_components(model: PathType, *, dtype=None) -> Components:
    """Load a preset of :data:`PRESETS` (built in code) or a checkpoint directory.

    Parameters
    ----------
    model : str or path
        A preset name of :data:`PRESETS` or a directory.
    dtype : torch.dtype, optional
        Weights are loaded in (cast to) this dtype; float32 by default.

    Returns
    -------
    Components
        On the CPU; move them with :meth:`Components.to`.
    """
    import torch

    from generators.video.diffusion.tiny import build_tiny

    dtype = dtype or torch.float32
    if str(model) in PRESETS:
        name = str(model)
        comps = build_tiny(
            "animatediff" if name.endswith("-animatediff") else "unet3d",
            levels=4 if name.startswith("tiny4") else 3,
        )
        return comps.to("cpu", dtype)
    info = check_checkpoint(model)
    try:
        return _load_directory(info, dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"cannot load the checkpoint: {exc}", info.path) from exc


def _load_directory(info: CheckpointInfo, dtype) -> Components:
    import diffusers
    from diffusers import AutoencoderKL, MotionAdapter, UNetMotionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    root = info.path
    common = {"local_files_only": True, "torch_dtype": dtype}

    def variant(folder: str) -> dict:
        v = info.variants.get(folder)
        return {"variant": v} if v else {}

    unet_cls = getattr(diffusers, info.unet_class)
    unet = unet_cls.from_pretrained(root / "unet", **common, **variant("unet"))
    adapter = None
    if info.unet_class == "UNet2DConditionModel":
        adapter = MotionAdapter.from_pretrained(
            root / "motion_adapter", **common, **variant("motion_adapter")
        )
        unet = UNetMotionModel.from_unet2d(unet, adapter).to(dtype)
    vae = AutoencoderKL.from_pretrained(root / "vae", **common, **variant("vae"))
    text_encoder = CLIPTextModel.from_pretrained(
        root / "text_encoder", local_files_only=True, dtype=dtype, **variant("text_encoder")
    )
    tokenizer = CLIPTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    sched_config = _read_json(root / "scheduler/scheduler_config.json")
    sched_cls = getattr(diffusers, str(sched_config.get("_class_name", "DDIMScheduler")), None)
    if sched_cls is None or not hasattr(sched_cls, "from_config"):
        sched_cls = diffusers.DDIMScheduler
    scheduler = sched_cls.from_config(sched_config)
    for module in (unet, vae, text_encoder):
        module.eval().requires_grad_(False)
    vae_scale = 2 ** (len(vae.config.block_out_channels) - 1)
    sample = unet.config.sample_size
    side = int(sample if isinstance(sample, int) else sample[0]) * vae_scale
    native = {"width": side, "height": side, "num_frames": 16}
    if (root / SAMPLER_FILE).is_file():
        given = _read_json(root / SAMPLER_FILE)
        try:
            native.update({k: int(given[k]) for k in native if k in given})
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{SAMPLER_FILE}: {exc}", root) from exc
    return Components(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        backbone=info.backbone,
        motion_adapter=adapter,
        native_size_px=(native["width"], native["height"]),
        native_frames=native["num_frames"],
        source=str(root),
    )


def save_components(components: Components, path: PathType) -> Path:
    """Write components as a diffusers checkpoint directory (through the diffusers
    pipeline class of their backbone, so the layout is exactly what diffusers writes)."""
    import warnings

    from diffusers import AnimateDiffPipeline

    out = Path(path)
    parts = {
        "vae": components.vae,
        "text_encoder": components.text_encoder,
        "tokenizer": components.tokenizer,
        "unet": components.unet,
        "scheduler": components.scheduler,
    }
    if components.backbone == "animatediff":
        pipe = AnimateDiffPipeline(**parts, motion_adapter=components.motion_adapter)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the deprecated-pipeline notice
            from diffusers import TextToVideoSDPipeline

            pipe = TextToVideoSDPipeline(**parts)
    pipe.save_pretrained(out, safe_serialization=True)
    width, height = components.native_size_px
    native = {"width": width, "height": height, "num_frames": components.native_frames}
    (out / SAMPLER_FILE).write_text(json.dumps(native, indent=2) + "\n")
    return out
