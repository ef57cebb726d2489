"""Audio I/O: reading every supported container, checks, resampling, format detection, writing."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from spa2v.audio import detect_format, load_scene_audio, read_audio, resample, write_wav
from spa2v.conventions import ambix_gains, ambix_to_fuma
from spa2v.errors import InputError

SR = 48000


def _tones(freqs_hz, seconds: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return np.stack([amp * np.sin(2 * np.pi * f * t) for f in freqs_hz]).astype(np.float32)


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1.0 / sr)[np.argmax(spec)])


def _write_av_audio(path: Path, y: np.ndarray, sr: int, codec: str = "aac") -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=sr)
        s.layout = "stereo" if y.shape[0] == 2 else "mono"
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(y, dtype=np.float32),
                                           format="fltp", layout=s.layout.name)
        frame.sample_rate = sr
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def _write_video_only(path: Path) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        for i in range(5):
            img = np.full((64, 64, 3), 40 * i, dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


# ----------------------------------------------------------------------------- reading


def test_read_float_wav_is_exact(write_audio, rng):
    y = (0.3 * rng.standard_normal((2, 4800))).astype(np.float32)
    path = write_audio("a.wav", y, SR)
    z, sr = read_audio(path)
    assert sr == SR
    assert z.dtype == np.float32 and z.shape == (2, 4800)
    assert np.array_equal(z, y)


@pytest.mark.parametrize("channels", [1, 2, 4])
def test_read_flac_keeps_channels_and_samples(write_audio, rng, channels):
    y = (0.3 * rng.uniform(-1, 1, (channels, 16000))).astype(np.float32)
    path = write_audio("a.flac", y, 16000, subtype="PCM_16")
    z, sr = read_audio(str(path))  # a str path works too
    assert sr == 16000
    assert z.dtype == np.float32 and z.shape == (channels, 16000)
    assert np.max(np.abs(z - y)) <= 1.0 / 32768 + 1e-7


def test_read_ogg_vorbis(write_audio):
    y = _tones([440.0, 1000.0])
    path = write_audio("a.ogg", y, SR, format="OGG", subtype="VORBIS")
    z, sr = read_audio(path)
    assert sr == SR and z.dtype == np.float32 and z.shape[0] == 2
    assert abs(z.shape[1] - y.shape[1]) <= 1024
    assert _peak_hz(z[0], sr) == pytest.approx(440.0, abs=3.0)
    assert _peak_hz(z[1], sr) == pytest.approx(1000.0, abs=3.0)


@pytest.mark.parametrize("suffix", [".mp4", ".m4a"])
def test_read_aac_audio_track_of_mp4(tmp_path, suffix):
    y = _tones([440.0, 1000.0])
    path = _write_av_audio(tmp_path / f"clip{suffix}", y, SR)
    z, sr = read_audio(path)
    assert sr == SR
    assert z.dtype == np.float32 and z.ndim == 2 and z.shape[0] == 2
    assert abs(z.shape[1] - y.shape[1]) <= 4096  # encoder priming and padding
    # channel 0 stays the left channel
    assert _peak_hz(z[0], sr) == pytest.approx(440.0, abs=3.0)
    assert _peak_hz(z[1], sr) == pytest.approx(1000.0, abs=3.0)
    rms = float(np.sqrt(np.mean(z[:, 4096:-4096] ** 2)))
    assert rms == pytest.approx(0.5 / math.sqrt(2), rel=0.1)


def test_read_mp3(tmp_path):
    y = _tones([440.0, 1000.0])
    path = tmp_path / "clip.mp3"
    try:
        sf.write(str(path), y.T, SR, format="MP3")
    except (sf.LibsndfileError, TypeError, ValueError):
        pytest.skip("this libsndfile cannot write MP3")
    z, sr = read_audio(path)
    assert sr == SR and z.dtype == np.float32 and z.shape[0] == 2
    assert abs(z.shape[1] - y.shape[1]) <= 4096
    assert _peak_hz(z[0], sr) == pytest.approx(440.0, abs=3.0)
    assert _peak_hz(z[1], sr) == pytest.approx(1000.0, abs=3.0)


def test_read_mono_option_averages_channels(write_audio):
    y = np.stack([np.full(1000, 0.2), np.full(1000, 0.6)]).astype(np.float32)
    z, _ = read_audio(write_audio("a.wav", y, SR), mono=True)
    assert z.shape == (1, 1000)
    assert np.allclose(z, 0.4)


# ----------------------------------------------------------------------------- resampling


@pytest.mark.parametrize(("sr_in", "sr_out"), [(48000, 16000), (16000, 48000), (44100, 48000),
                                               (48000, 44100)])
def test_resample_rate_length_and_content(sr_in, sr_out):
    y = _tones([1000.0, 3000.0], seconds=1.0, sr=sr_in)
    z = resample(y, sr_in, sr_out)
    assert z.dtype == np.float32 and z.shape == (2, sr_out)
    assert _peak_hz(z[0], sr_out) == pytest.approx(1000.0, abs=2.0)
    assert _peak_hz(z[1], sr_out) == pytest.approx(3000.0, abs=2.0)
    mid = slice(sr_out // 10, -sr_out // 10)
    assert np.sqrt(np.mean(z[:, mid] ** 2)) == pytest.approx(0.5 / math.sqrt(2), rel=0.02)


def test_resample_same_rate_is_identity(rng):
    y = rng.standard_normal((2, 100)).astype(np.float32)
    assert np.array_equal(resample(y, SR, SR), y)


def test_read_audio_resamples_on_request(write_audio):
    path = write_audio("a.wav", _tones([500.0], seconds=1.5), SR)
    z, sr = read_audio(path, sr=16000)
    assert sr == 16000
    assert z.shape == (1, 24000) and z.dtype == np.float32
    assert _peak_hz(z[0], 16000) == pytest.approx(500.0, abs=2.0)


# ----------------------------------------------------------------------------- format


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32) * 0.1


def test_detect_mono_and_foa():
    assert detect_format(_noise(SR)[None, :], SR) == "mono"
    s = _noise(SR)
    assert detect_format((ambix_gains(40, 10)[:, None] * s).astype(np.float32), SR) == "foa"


@pytest.mark.parametrize("delay", [8, 20, -15])
def test_detect_delayed_pair_is_binaural(delay):
    s = _noise(2 * SR + 200)
    left = s[100:100 + 2 * SR]
    right = s[100 - delay:100 - delay + 2 * SR]  # right = left delayed by `delay` samples
    assert detect_format(np.stack([left, right]), SR) == "binaural"


@pytest.mark.parametrize("gains", [(0.9, 0.3), (0.2, 0.8), (0.5, 0.5), (1.0, 0.0)])
def test_detect_amplitude_panned_pair_is_stereo(gains):
    s = _noise(2 * SR)
    assert detect_format(np.stack([gains[0] * s, gains[1] * s]), SR) == "stereo"


def test_detect_two_panned_sources_is_stereo():
    a, b = _noise(2 * SR, 1), _noise(2 * SR, 2)
    y = np.stack([0.9 * a + 0.2 * b, 0.2 * a + 0.9 * b])
    assert detect_format(y, SR) == "stereo"


def test_detect_format_rejects_three_channels():
    with pytest.raises(ValueError):
        detect_format(np.zeros((3, SR), dtype=np.float32), SR)


def test_load_scene_audio_detects_and_overrides(write_audio):
    s = _noise(SR)
    path = write_audio("pan.wav", np.stack([0.8 * s, 0.3 * s]), SR)
    y, sr, fmt = load_scene_audio(path)
    assert (fmt, sr, y.shape) == ("stereo", SR, (2, SR))
    _, _, fmt = load_scene_audio(path, fmt="binaural")
    assert fmt == "binaural"


@pytest.mark.parametrize(("channels", "fmt"), [(2, "foa"), (2, "mono"), (1, "stereo"),
                                               (4, "binaural"), (1, "foa")])
def test_load_scene_audio_override_must_match_channels(write_audio, channels, fmt):
    path = write_audio("x.wav", np.tile(_noise(SR), (channels, 1)), SR)
    with pytest.raises(InputError) as ei:
        load_scene_audio(path, fmt=fmt)
    assert str(path) in str(ei.value)


def test_load_scene_audio_unknown_format(write_audio):
    path = write_audio("x.wav", _noise(SR)[None], SR)
    with pytest.raises(InputError, match="unknown format"):
        load_scene_audio(path, fmt="quad")


def test_load_scene_audio_converts_fuma(write_audio):
    s = _noise(SR)
    ambix = (ambix_gains(-70, 25)[:, None] * s).astype(np.float32)
    path = write_audio("fuma.wav", ambix_to_fuma(ambix), SR)
    y, _, fmt = load_scene_audio(path, foa_convention="fuma")
    assert fmt == "foa"
    assert np.allclose(y, ambix, atol=1e-6)
    # without the flag the file is taken as AmbiX as it is (channels not reordered)
    y2, _, _ = load_scene_audio(path)
    assert np.allclose(y2, ambix_to_fuma(ambix), atol=1e-7)
    with pytest.raises(InputError):
        load_scene_audio(path, foa_convention="n3d-ish")


# ----------------------------------------------------------------------------- bad input


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    out["missing"] = tmp_path / "does_not_exist.wav"
    d = tmp_path / "folder.wav"
    d.mkdir()
    out["directory"] = d
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    out["zero_bytes"] = empty
    txt = tmp_path / "notes.wav"
    txt.write_text("this is a text file, not audio\n" * 20)
    out["text_as_wav"] = txt
    zl = tmp_path / "zero_length.wav"
    sf.write(str(zl), np.zeros((0, 2), dtype=np.float32), SR, subtype="FLOAT")
    out["zero_length_wav"] = zl
    for name, bad in (("nan", np.nan), ("inf", np.inf), ("neg_inf", -np.inf)):
        y = np.zeros((2, 4800), dtype=np.float32)
        y[1, 1234] = bad
        p = tmp_path / f"{name}.wav"
        sf.write(str(p), y.T, SR, subtype="FLOAT")
        out[name] = p
    for ch in (3, 5, 6):
        p = tmp_path / f"ch{ch}.wav"
        sf.write(str(p), np.zeros((4800, ch), dtype=np.float32), SR, subtype="FLOAT")
        out[f"{ch}_channels"] = p
    out["video_no_audio"] = _write_video_only(tmp_path / "silent_film.mp4")
    good = _write_av_audio(tmp_path / "good.mp4", _tones([440.0, 880.0]), SR)
    data = good.read_bytes()
    trunc = tmp_path / "truncated.mp4"
    trunc.write_bytes(data[: len(data) // 2])
    out["truncated_mp4"] = trunc
    wav = tmp_path / "full.wav"
    sf.write(str(wav), np.zeros((4800, 2), dtype=np.float32), SR, subtype="FLOAT")
    cut = tmp_path / "cut_header.wav"
    cut.write_bytes(wav.read_bytes()[:30])
    out["truncated_wav_header"] = cut
    garbage = tmp_path / "garbage.flac"
    garbage.write_bytes(np.random.default_rng(0).bytes(8000))
    out["garbage_flac"] = garbage
    return out


BAD_CASES = ["missing", "directory", "zero_bytes", "text_as_wav", "zero_length_wav", "nan", "inf",
             "neg_inf", "3_channels", "5_channels", "6_channels", "video_no_audio",
             "truncated_mp4", "truncated_wav_header", "garbage_flac"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_raises_input_error_naming_the_file(tmp_path, case):
    path = _bad_inputs(tmp_path)[case]
    with pytest.raises(InputError) as ei:
        read_audio(path)
    msg = str(ei.value)
    assert str(path) in msg
    assert "\n" not in msg
    assert ei.value.path == str(path)


@pytest.mark.parametrize(("case", "words"), [
    ("missing", "no such file"), ("directory", "directory"), ("zero_bytes", "empty"),
    ("nan", "NaN"), ("inf", "infinite"), ("3_channels", "3 channels"),
    ("5_channels", "5 channels"), ("video_no_audio", "no audio"),
    ("zero_length_wav", "no audio samples"),
])
def test_bad_input_messages_say_what_is_wrong(tmp_path, case, words):
    path = _bad_inputs(tmp_path)[case]
    with pytest.raises(InputError, match=words):
        read_audio(path)


def test_unchecked_read_returns_non_finite_samples(tmp_path):
    path = _bad_inputs(tmp_path)["nan"]
    y, _ = read_audio(path, check=False)
    assert np.isnan(y[1, 1234])


# ----------------------------------------------------------------------------- writing


def test_write_wav_round_trip(tmp_path, rng):
    y = (0.5 * rng.standard_normal((2, 3000))).astype(np.float32)
    out = write_wav(tmp_path / "o.wav", y, 22050)
    assert out == tmp_path / "o.wav"
    z, sr = read_audio(out)
    assert sr == 22050 and np.array_equal(z, y)
    # a 1-D signal is written as one channel
    write_wav(tmp_path / "m.wav", y[0], 22050)
    assert sf.info(str(tmp_path / "m.wav")).channels == 1


def test_write_wav_refuses_existing_file_and_leaves_it_untouched(tmp_path):
    path = tmp_path / "exists.wav"
    write_wav(path, np.full((1, 100), 0.25, dtype=np.float32), SR)
    before = path.read_bytes()
    with pytest.raises(InputError) as ei:
        write_wav(path, np.zeros((2, 500), dtype=np.float32), SR)
    assert str(path) in str(ei.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.wav"]  # nothing partial
    write_wav(path, np.zeros((2, 500), dtype=np.float32), SR, overwrite=True)
    z, _ = read_audio(path)
    assert z.shape == (2, 500)


def test_write_wav_refuses_an_input_path_even_with_overwrite(tmp_path):
    path = tmp_path / "in.wav"
    write_wav(path, np.full((1, 100), 0.25, dtype=np.float32), SR)
    before = path.read_bytes()
    with pytest.raises(InputError, match="input"):
        write_wav(path, np.zeros((1, 100), dtype=np.float32), SR, overwrite=True,
                  inputs=(str(tmp_path / "." / "in.wav"),))
    assert path.read_bytes() == before


def test_write_wav_leaves_nothing_when_it_fails(tmp_path):
    with pytest.raises(ValueError):
        write_wav(tmp_path / "nan.wav", np.array([[0.0, np.nan]], dtype=np.float32), SR)
    with pytest.raises(ValueError):
        write_wav(tmp_path / "empty.wav", np.zeros((2, 0), dtype=np.float32), SR)
    assert list(tmp_path.iterdir()) == []


def test_write_wav_creates_parent_directories(tmp_path):
    out = write_wav(tmp_path / "a" / "b" / "c.wav", np.zeros((4, 10), dtype=np.float32), SR)
    assert sf.info(str(out)).channels == 4
