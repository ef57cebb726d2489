"""spa2v.video: H.264/AAC MP4 writing, reading and probing, checked by decoding with PyAV."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from spa2v.audio import write_wav
from spa2v.conventions import ambix_gains
from spa2v.errors import InputError
from spa2v.video import foa_to_stereo, probe_video, read_video, to_stereo, write_mp4

W, H = 64, 48


def color_frames(n: int, width: int = W, height: int = H) -> list[np.ndarray]:
    """Frames of flat, distinct colours (left half and right half differ)."""
    out = []
    for i in range(n):
        f = np.empty((height, width, 3), np.uint8)
        f[:, : width // 2] = ((40 + 13 * i) % 256, 200, 90)
        f[:, width // 2 :] = (30, (60 + 29 * i) % 256, 220)
        out.append(f)
    return out


def tone(sr: int, duration_s: float, freq_hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(sr * duration_s))) / sr
    return (0.3 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def decode_audio(path: Path) -> tuple[np.ndarray, int]:
    """All decoded audio samples, (channels, samples), and the rate."""
    chunks = []
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        sr = stream.codec_context.sample_rate
        for frame in c.decode(stream):
            chunks.append(frame.to_ndarray().reshape(frame.layout.nb_channels, -1))
    return np.concatenate(chunks, axis=1), sr


@pytest.mark.parametrize("channels", [1, 2, 4])
@pytest.mark.parametrize("sr", [48000, 44100, 22050, 37000])
@pytest.mark.parametrize(
    ("n_frames", "fps", "audio_s"), [(24, 24, 1.0), (30, 12, 1.2), (20, 25, 3.0)]
)
def test_write_mp4_streams_and_durations(tmp_path, channels, sr, n_frames, fps, audio_s):
    """H.264 + stereo AAC, requested frame count and size, audio cut/padded to the video."""
    y = np.tile(tone(sr, audio_s), (channels, 1))
    out = write_mp4(
        tmp_path / "a.mp4", color_frames(n_frames), fps=fps, size=(W, H), audio=y, sr=sr
    )
    info = probe_video(out)
    assert info["video_codec"] == "h264"
    assert (info["width"], info["height"]) == (W, H)
    assert info["frames"] == n_frames
    assert info["fps"] == pytest.approx(fps)
    assert info["duration"] == pytest.approx(n_frames / fps, abs=1e-6)
    assert info["audio_codec"] == "aac"
    assert info["audio_channels"] == 2
    assert info["audio_sample_rate"] == (sr if sr != 37000 else 48000)
    assert abs(info["audio_duration"] - info["duration"]) <= 1.0 / fps
    samples, out_sr = decode_audio(out)
    assert abs(samples.shape[1] / out_sr - n_frames / fps) <= 1.0 / fps + 1024 / out_sr
    frames, _ = read_video(out)
    assert frames.shape == (n_frames, H, W, 3)


def test_pixel_format_and_faststart(tmp_path):
    out = write_mp4(tmp_path / "f.mp4", color_frames(5), fps=10, size=(W, H))
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
    data = out.read_bytes()
    # +faststart: the index (moov) precedes the media data (mdat)
    assert data.find(b"moov") < data.find(b"mdat")


def test_video_without_audio(tmp_path):
    out = write_mp4(tmp_path / "v.mp4", color_frames(6), fps=6, size=(W, H))
    info = probe_video(out)
    assert info["frames"] == 6
    assert info["audio_codec"] is None and info["audio_duration"] is None


def test_mono_is_upmixed_to_identical_channels(tmp_path):
    sr = 48000
    out = write_mp4(
        tmp_path / "m.mp4", color_frames(24), fps=24, size=(W, H), audio=tone(sr, 1.0)[None], sr=sr
    )
    samples, _ = decode_audio(out)
    assert samples.shape[0] == 2
    np.testing.assert_allclose(samples[0], samples[1], atol=2e-3)
    assert np.sqrt(np.mean(samples[0, 4800:40000] ** 2)) == pytest.approx(
        0.3 / np.sqrt(2), rel=0.05
    )


def test_stereo_channels_stay_apart(tmp_path):
    sr = 44100
    y = np.stack([tone(sr, 1.0, 500.0), np.zeros(sr, np.float32)])
    out = write_mp4(tmp_path / "s.mp4", color_frames(24), fps=24, size=(W, H), audio=y, sr=sr)
    samples, _ = decode_audio(out)
    rms = np.sqrt(np.mean(samples[:, 4410:40000] ** 2, axis=1))
    assert rms[0] > 0.15 and rms[1] < 0.01 * rms[0]


@pytest.mark.parametrize(("azimuth_deg", "louder"), [(90.0, 0), (-90.0, 1), (60.0, 0), (-45.0, 1)])
def test_foa_decodes_to_the_correct_side(tmp_path, azimuth_deg, louder):
    sr = 48000
    s = tone(sr, 1.0, 700.0)
    gains = np.asarray(ambix_gains(azimuth_deg, 0.0), dtype=np.float32).reshape(4, 1)
    foa = gains * s[None]
    out = write_mp4(tmp_path / "foa.mp4", color_frames(24), fps=24, size=(W, H), audio=foa, sr=sr)
    samples, _ = decode_audio(out)
    rms = np.sqrt(np.mean(samples[:, 4800:40000] ** 2, axis=1))
    expected = foa_to_stereo(foa)
    expected_rms = np.sqrt(np.mean(expected**2, axis=1))
    assert rms[louder] > rms[1 - louder]
    np.testing.assert_allclose(rms, expected_rms, atol=0.01)


def test_foa_to_stereo_virtual_cardioids():
    w = np.ones(8, np.float32)
    front = foa_to_stereo(np.stack([w, 0 * w, 0 * w, w]))  # az 0
    left = foa_to_stereo(np.stack([w, w, 0 * w, 0 * w]))  # az +90
    np.testing.assert_allclose(front, 0.5)
    np.testing.assert_allclose(left[0], 1.0)
    np.testing.assert_allclose(left[1], 0.0)
    with pytest.raises(ValueError):
        foa_to_stereo(np.zeros((2, 8)))


def test_to_stereo_rejects_other_channel_counts():
    with pytest.raises(InputError, match="3 channels"):
        to_stereo(np.zeros((3, 100), np.float32))
    assert to_stereo(np.zeros(100, np.float32)).shape == (2, 100)


@pytest.mark.parametrize("size", [(65, 48), (64, 47), (0, 48)])
def test_odd_size_is_a_clear_error(tmp_path, size):
    path = tmp_path / "odd.mp4"
    with pytest.raises(InputError, match="even"):
        write_mp4(path, color_frames(3, *size) if min(size) > 0 else [], fps=10, size=size)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_output_refused_and_untouched(tmp_path):
    path = tmp_path / "keep.mp4"
    path.write_bytes(b"precious")
    with pytest.raises(InputError, match="exists"):
        write_mp4(path, color_frames(3), fps=10, size=(W, H))
    assert path.read_bytes() == b"precious"
    write_mp4(path, color_frames(3), fps=10, size=(W, H), overwrite=True)
    assert probe_video(path)["frames"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.mp4"]


def test_failure_mid_write_leaves_nothing(tmp_path):
    def frames():
        yield from color_frames(5)
        raise RuntimeError("renderer crashed")

    path = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="crashed"):
        write_mp4(path, frames(), fps=10, size=(W, H), audio=tone(48000, 1.0), sr=48000)
    assert list(tmp_path.iterdir()) == []


def test_wrong_frame_shape_leaves_nothing(tmp_path):
    frames = color_frames(3) + [np.zeros((H, W + 2, 3), np.uint8)]
    with pytest.raises(ValueError, match="frame 3"):
        write_mp4(tmp_path / "x.mp4", frames, fps=10, size=(W, H))
    assert list(tmp_path.iterdir()) == []


def test_no_frames_is_an_error(tmp_path):
    with pytest.raises(InputError, match="no video frames"):
        write_mp4(tmp_path / "empty.mp4", [], fps=10, size=(W, H))
    assert list(tmp_path.iterdir()) == []


def test_read_video_round_trip(tmp_path):
    src = color_frames(12)
    out = write_mp4(tmp_path / "r.mp4", src, fps=12, size=(W, H), crf=10)
    frames, fps = read_video(out)
    assert fps == pytest.approx(12.0)
    assert frames.dtype == np.uint8 and frames.shape == (12, H, W, 3)
    # flat regions away from the colour edge survive H.264 within a few levels
    err = np.abs(frames[:, 4:-4, 4:20].astype(int) - np.stack(src)[:, 4:-4, 4:20].astype(int))
    assert err.mean() < 3.0 and err.max() < 12
    few, _ = read_video(out, max_frames=4, size=(32, 24))
    assert few.shape == (4, 24, 32, 3)


def test_probe_and_read_reject_non_video(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all")
    for fn in (probe_video, read_video):
        with pytest.raises(InputError) as exc:
            fn(text)
        assert str(text) in str(exc.value)
    wav = tmp_path / "sound.wav"
    write_wav(wav, tone(16000, 0.5)[None], 16000)
    with pytest.raises(InputError, match="no video stream"):
        probe_video(wav)
    with pytest.raises(InputError, match="no such file"):
        read_video(tmp_path / "missing.mp4")
