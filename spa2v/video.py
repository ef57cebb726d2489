"""Video I/O: write H.264/AAC MP4 files and read them back (PyAV).

Frames are ``(H, W, 3)`` uint8 RGB arrays; audio follows the project convention,
float32 ``(channels, samples)``. The writer accepts mono, stereo and first-order
Ambisonics (AmbiX, 4 channels) and always muxes a stereo AAC track (see
:func:`foa_to_stereo` for the decode), trimmed or padded to the duration of the video.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from spa2v._typing import PathType
from spa2v.audio import resample
from spa2v.errors import InputError
from spa2v.fsutil import atomic_output

AAC_SAMPLE_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)
"""Sample rates the AAC encoder takes as they are; any other rate is resampled to 48 kHz."""

_AAC_FRAME = 1024
_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def foa_to_stereo(foa: np.ndarray) -> np.ndarray:
    """Decode first-order Ambisonics to a stereo pair with two virtual cardioids.

    The cardioids point at azimuth +90 (left) and -90 (right) on the horizon:
    ``left = 0.5 * (W + Y)``, ``right = 0.5 * (W - Y)`` (AmbiX, SN3D, so ``W`` and ``Y``
    share one scale). A source straight ahead lands in both channels at half level; one at
    the far left only in the left channel. Z (height) and X (front-back) are dropped:
    a stereo pair cannot show them.

    Parameters
    ----------
    foa : np.ndarray, shape (4, samples)
        AmbiX channels in ACN order ``(W, Y, Z, X)``.

    Returns
    -------
    np.ndarray, shape (2, samples), float32
        ``(left, right)``.
    """
    foa = np.asarray(foa, dtype=np.float32)
    if foa.ndim != 2 or foa.shape[0] != 4:
        raise ValueError(f"FOA needs shape (4, samples), got {foa.shape}")
    w, y = foa[0], foa[1]
    return np.stack([0.5 * (w + y), 0.5 * (w - y)]).astype(np.float32)


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """Mono (1 or 1-D), stereo (2) or FOA (4 channels) -> stereo ``(2, samples)`` float32."""
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim == 1:
        y = y[None]
    if y.ndim != 2:
        raise InputError(f"audio must have shape (channels, samples), got {y.shape}")
    n_ch = y.shape[0]
    if n_ch == 1:
        return np.repeat(y, 2, axis=0)
    if n_ch == 2:
        return y
    if n_ch == 4:
        return foa_to_stereo(y)
    raise InputError(f"audio with {n_ch} channels cannot be muxed (expected 1, 2 or 4)")


def _fit_length(y: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad ``(channels, samples)`` to exactly ``n_samples``."""
    if y.shape[1] >= n_samples:
        return y[:, :n_samples]
    return np.pad(y, ((0, 0), (0, n_samples - y.shape[1])))


def write_mp4(
    path: PathType,
    frames: Iterable[np.ndarray],
    *,
    fps: int,
    size: tuple[int, int],
    audio: np.ndarray | None = None,
    sr: int | None = None,
    overwrite: bool = False,
    crf: int = 20,
    preset: str = "veryfast",
) -> Path:
    """Encode frames (and audio) to an H.264 MP4 that browsers can stream.

    The video is H.264, yuv420p, with ``+faststart`` (the index at the front of the file).
    The audio, when given, is muxed as stereo AAC (mono is duplicated, FOA is decoded
    by :func:`foa_to_stereo`, a rate AAC does not take is resampled to 48 kHz) and
    trimmed or zero-padded to the video's duration, ``n_frames / fps``, so both
    streams end together. The file is written under a temporary name in the same folder
    and renamed when complete; on any failure nothing is left behind.

    Parameters
    ----------
    path : str or Path
        Output file (``.mp4``; ``.mov`` and ``.mkv`` also work).
    frames : iterable of np.ndarray, each shape (H, W, 3) uint8 RGB
        Consumed lazily, one frame at a time.
    fps : int
        Frame rate.
    size : (W, H)
        Frame size in pixels; both must be even (yuv420p halves the chroma planes).
    audio : np.ndarray, shape (channels, samples), optional
        1, 2 or 4 (AmbiX FOA) channels, float32 in [-1, 1].
    sr : int, optional
        Sample rate of ``audio`` (required with it).
    overwrite : bool
        Replace an existing file; otherwise an existing ``path`` is an error.
    crf, preset : int, str
        x264 quality (lower is better, 18-23 is typical) and speed preset.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        Odd or non-positive size, bad audio shape, or ``path`` exists without overwrite.
    """
    path = Path(path)
    width, height = (int(v) for v in size)
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise InputError(
            f"video size must be positive and even (H.264 yuv420p), got {width}x{height}", path
        )
    if fps <= 0 or int(fps) != fps:
        raise InputError(f"fps must be a positive integer, got {fps}", path)
    fps = int(fps)
    stereo = None
    if audio is not None:
        if sr is None or sr <= 0:
            raise InputError("audio needs a positive sample rate", path)
        stereo = to_stereo(audio)
        if int(sr) not in AAC_SAMPLE_RATES:
            stereo = resample(stereo, int(sr), 48000)
            sr = 48000
        sr = int(sr)
        stereo = np.clip(np.nan_to_num(stereo), -1.0, 1.0)
        stereo = np.ascontiguousarray(stereo, dtype=np.float32)
    fmt = _FORMATS.get(path.suffix.lower(), "mp4")
    with atomic_output(path, overwrite) as tmp:
        _encode(tmp, fmt, frames, fps, width, height, stereo, sr, crf, preset)
    return path


def _encode(
    tmp: Path,
    fmt: str,
    frames: Iterable[np.ndarray],
    fps: int,
    width: int,
    height: int,
    stereo: np.ndarray | None,
    sr: int | None,
    crf: int,
    preset: str,
) -> None:
    container_options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
    with av.open(str(tmp), "w", format=fmt, container_options=container_options) as out:
        vstream = out.add_stream("libx264", rate=fps)
        vstream.width, vstream.height = width, height
        vstream.pix_fmt = "yuv420p"
        vstream.time_base = Fraction(1, fps)
        vstream.options = {"crf": str(crf), "preset": preset}
        astream = None
        if stereo is not None:
            astream = out.add_stream("aac", rate=sr, layout="stereo")
            astream.time_base = Fraction(1, sr)
        audio_sent = 0  # samples of audio encoded so far

        def send_audio(until: int, pad: bool) -> None:
            nonlocal audio_sent
            # whole AAC frames only while the video runs; the tail (padded) at the end
            while until - audio_sent >= _AAC_FRAME or (pad and until > audio_sent):
                n = min(_AAC_FRAME, until - audio_sent)
                chunk = _fit_length(stereo[:, audio_sent : audio_sent + n], n)
                aframe = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chunk), format="fltp", layout="stereo"
                )
                aframe.sample_rate = sr
                aframe.pts = audio_sent
                aframe.time_base = Fraction(1, sr)
                out.mux(astream.encode(aframe))
                audio_sent += n

        n_frames = 0
        for frame in frames:
            frame = np.asarray(frame)
            if frame.shape != (height, width, 3) or frame.dtype != np.uint8:
                raise ValueError(
                    f"frame {n_frames} has shape {frame.shape} {frame.dtype}, "
                    f"expected ({height}, {width}, 3) uint8"
                )
            # cv2's I420 is BT.601 limited range, what decoders assume for untagged SD
            yuv = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420)
            vframe = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            vframe.pts = n_frames
            out.mux(vstream.encode(vframe))
            n_frames += 1
            if astream is not None:
                send_audio(n_frames * sr // fps, pad=False)
        if n_frames == 0:
            raise InputError("no video frames to write")
        out.mux(vstream.encode(None))
        if astream is not None:
            send_audio(round(n_frames * sr / fps), pad=True)
            out.mux(astream.encode(None))


def _open_input(path: PathType) -> av.container.InputContainer:
    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", p)
    try:
        container = av.open(str(p), "r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"cannot read as video: {exc}", p) from exc
    if not container.streams.video:
        container.close()
        raise InputError("no video stream (not a video, or a video with no frames)", p)
    return container


def read_video(
    path: PathType, *, max_frames: int | None = None, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, float]:
    """Decode a video file to RGB frames.

    Parameters
    ----------
    path : str or Path
    max_frames : int, optional
        Stop after this many frames.
    size : (W, H), optional
        Resize each frame to this size (area interpolation).

    Returns
    -------
    frames : np.ndarray, shape (T, H, W, 3), uint8 RGB
    fps : float
        The stream's average frame rate.

    Raises
    ------
    InputError
        Missing or unreadable file, or a file with no video stream.
    """
    out: list[np.ndarray] = []
    with _open_input(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        try:
            for frame in container.decode(stream):
                if max_frames is not None and len(out) >= max_frames:
                    break
                img = frame.to_ndarray(format="rgb24")
                if size is not None and (img.shape[1], img.shape[0]) != tuple(size):
                    img = cv2.resize(img, tuple(int(v) for v in size), interpolation=cv2.INTER_AREA)
                out.append(img)
        except av.FFmpegError as exc:
            raise InputError(f"cannot decode video: {exc}", path) from exc
    if not out:
        raise InputError("video stream has no decodable frames", path)
    return np.stack(out), fps


def _stream_duration_s(stream: av.stream.Stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return None


def probe_video(path: PathType) -> dict:
    """Describe a video file without decoding its pictures.

    Returns
    -------
    dict
        ``video_codec``, ``width``, ``height``, ``fps``, ``frames``, ``duration`` (s,
        of the video stream), ``audio_codec``, ``audio_channels``, ``audio_sample_rate``
        and ``audio_duration`` (s); the audio keys are None when there is no audio.

    Raises
    ------
    InputError
        Missing or unreadable file, or a file with no video stream.
    """
    with _open_input(path) as container:
        vs = container.streams.video[0]
        rate = vs.average_rate or vs.base_rate or vs.guessed_rate
        fps = float(rate) if rate else None
        n_frames = int(vs.frames or 0)
        if n_frames == 0:  # the container does not say: count the packets
            n_frames = sum(1 for p in container.demux(vs) if p.size > 0)
        duration = _stream_duration_s(vs)
        if duration is None and fps:
            duration = n_frames / fps
        info: dict = {
            "video_codec": vs.codec_context.name,
            "width": vs.codec_context.width,
            "height": vs.codec_context.height,
            "fps": fps,
            "frames": n_frames,
            "duration": duration,
            "audio_codec": None,
            "audio_channels": None,
            "audio_sample_rate": None,
            "audio_duration": None,
        }
        if container.streams.audio:
            aus = container.streams.audio[0]
            info.update(
                audio_codec=aus.codec_context.name,
                audio_channels=aus.codec_context.channels,
                audio_sample_rate=aus.codec_context.sample_rate,
                audio_duration=_stream_duration_s(aus),
            )
            if info["audio_duration"] is None and container.duration is not None:
                # e.g. Matroska keeps no per-stream duration: the container's is the longest
                info["audio_duration"] = container.duration / av.time_base
    return info
