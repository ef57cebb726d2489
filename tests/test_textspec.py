"""The rule text parser (generators.audio.textspec): places, motions, speeds, relations."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from generators.audio.textspec import (
    APPROACH_FAR_M,
    DEFAULT_DISTANCE_M,
    FAR_DISTANCE_M,
    SpatialSpec,
    normalize_text,
    parse_spatial_text,
)
from spa2v.classes import SOUND_CLASSES
from spa2v.conventions import angle_diff_deg
from spa2v.errors import InputError

D = 4.0


def only(spec: SpatialSpec):
    assert spec.placed, spec.describe()
    assert len(spec.sources) == 1, spec.describe()
    return spec.sources[0]


def at(src, t: float) -> tuple[float, float, float]:
    az, el, r = src.trajectory.at(np.array([t]))
    return float(az[0]), float(el[0]), float(r[0])


@pytest.mark.parametrize(
    ("text", "azimuth_deg", "elevation_deg", "distance_m"),
    [
        ("a dog barks on the left", 60.0, 0.0, DEFAULT_DISTANCE_M),
        ("a dog barks on the right", -60.0, 0.0, DEFAULT_DISTANCE_M),
        ("a guitar plays front right", -30.0, 0.0, DEFAULT_DISTANCE_M),
        ("a guitar plays in the front-left", 30.0, 0.0, DEFAULT_DISTANCE_M),
        ("a man talks behind the listener", 180.0, 0.0, DEFAULT_DISTANCE_M),
        ("a cat meows behind you on the left", 150.0, 0.0, DEFAULT_DISTANCE_M),
        ("on the far right", -80.0, 0.0, DEFAULT_DISTANCE_M),
        ("a piano slightly to the left", 20.0, 0.0, DEFAULT_DISTANCE_M),
        ("a drum 30 degrees to the right", -30.0, 0.0, DEFAULT_DISTANCE_M),
        ("a drum 45° left", 45.0, 0.0, DEFAULT_DISTANCE_M),
        ("someone speaks at azimuth -45 and elevation 20 degrees", -45.0, 20.0,
         DEFAULT_DISTANCE_M),
        ("a bird chirps above the listener", 0.0, 65.0, DEFAULT_DISTANCE_M),
        ("a helicopter hovers directly overhead", 0.0, 80.0, DEFAULT_DISTANCE_M),
        ("a car idles straight ahead, 5 metres away", 0.0, 0.0, 5.0),
        ("a train rumbles far away on the right", -60.0, 0.0, FAR_DISTANCE_M),
        ("a dog barks in the centre, three meters away", 0.0, 0.0, 3.0),
        ("a cat meows very close to the listener on the left", 60.0, 0.0, 0.5),
    ],
)
def test_static_places(text, azimuth_deg, elevation_deg, distance_m):
    src = only(parse_spatial_text(text, duration_s=D))
    assert src.trajectory.is_static
    az, el, r = at(src, 1.0)
    assert abs(float(angle_diff_deg(az, azimuth_deg))) < 1e-6
    assert el == pytest.approx(elevation_deg)
    assert r == pytest.approx(distance_m)


def test_left_to_right_crosses_through_the_front():
    src = only(parse_spatial_text("a police siren moves from the left to the right", duration_s=D))
    assert src.cls.name == "ambulance" and src.name == "police siren"
    az = src.trajectory.at(np.linspace(0.0, D, 41))[0]
    assert az[0] >= 60 and az[-1] <= -60
    assert np.all(np.diff(az) <= 1e-9)  # monotonic, the short way (through the front)
    assert np.all(np.abs(az) <= 90)
    assert src.labels(D)["motion"] == "left_to_right"


@pytest.mark.parametrize(("rotation", "via_deg"), [("counter-clockwise", 90.0),
                                                   ("anti-clockwise", 90.0),
                                                   ("clockwise", -90.0)])
def test_rotation_chooses_the_way_round(rotation, via_deg):
    text = f"A police siren wails from the front and slowly moves {rotation} to the back"
    src = only(parse_spatial_text(text, duration_s=D))
    az_start, _, _ = at(src, 0.0)
    az_mid, _, _ = at(src, D / 2)
    az_end, _, _ = at(src, D)
    assert az_start == pytest.approx(0.0, abs=1e-6)
    assert abs(float(angle_diff_deg(az_end, 180.0))) < 1e-6
    assert abs(float(angle_diff_deg(az_mid, via_deg))) < 5.0


@pytest.mark.parametrize(
    ("text", "motion"),
    [
        ("a car approaches from the left", "approaching"),
        ("footsteps recede into the distance", "receding"),
        ("a dog runs away from the listener", "receding"),
        ("a car passes by from right to left", "right_to_left"),
        ("a motorbike whizzes past", "left_to_right"),
        ("a drum kit quickly pans left to right", "left_to_right"),
        ("a guitar slowly moves from the right to the front and then to the left",
         "right_to_left"),
        ("the singer walks to the left", "right_to_left"),
        ("a bird flies leftwards", "right_to_left"),
        ("a dog barks on the left", "static"),
    ],
)
def test_motion_labels(text, motion):
    assert only(parse_spatial_text(text, duration_s=D)).labels(D)["motion"] == motion


def test_approach_changes_level_by_more_than_the_label_threshold():
    src = only(parse_spatial_text("a truck approaches", duration_s=D))
    _, _, r0 = at(src, 0.0)
    _, _, r1 = at(src, D)
    assert r0 == pytest.approx(APPROACH_FAR_M)
    assert 20 * np.log10(r0 / r1) >= 6.0


def test_pass_by_is_a_straight_line_closest_in_the_middle():
    src = only(parse_spatial_text("a car passes by", duration_s=D))
    assert src.trajectory.interpolation == "cartesian"
    t = np.linspace(0.0, D, 81)
    az, _, r = src.trajectory.at(t)
    assert np.argmin(r) == 40
    assert az[0] > 60 and az[-1] < -60
    xyz = src.trajectory.xyz_at(t)
    assert np.ptp(xyz[:, 0]) < 1e-9 and np.ptp(xyz[:, 2]) < 1e-9  # a straight line


def test_fly_over_passes_overhead_front_to_back():
    src = only(parse_spatial_text("a plane flies overhead", duration_s=D))
    _, el_mid, _ = at(src, D / 2)
    az0, _, _ = at(src, 0.0)
    az1, _, _ = at(src, D)
    assert el_mid > 80
    assert abs(az0) < 1e-6 and abs(abs(az1) - 180) < 1e-6


def test_circle_and_rise():
    src = only(parse_spatial_text("a helicopter circles around the listener", duration_s=D))
    az = src.trajectory.at(np.linspace(0.0, D, 401))[0]
    swept = np.sum(angle_diff_deg(az[1:], az[:-1]))
    assert swept == pytest.approx(360.0, abs=1.0)
    rise = only(parse_spatial_text("a bird rises", duration_s=D))
    assert at(rise, 0.0)[1] == 0.0 and at(rise, D)[1] >= 45.0


def test_speed_words_set_how_long_the_motion_takes():
    def moving_time(text: str) -> float:
        src = only(parse_spatial_text(text, duration_s=D))
        t = np.linspace(0.0, D, 401)
        az = src.trajectory.at(t)[0]
        moving = np.abs(np.gradient(az, t)) > 1e-6
        return float(moving.sum() / len(t) * D)

    slow = moving_time("a car slowly moves from the left to the right")
    normal = moving_time("a car moves from the left to the right")
    fast = moving_time("a car quickly moves from the left to the right")
    assert slow > normal > fast
    assert slow == pytest.approx(D, abs=0.05)


def test_relative_placement_of_two_sources():
    spec = parse_spatial_text("a dog to the left of a car", duration_s=D)
    assert spec.placed and [s.cls.name for s in spec.sources] == ["dog", "car"]
    dog, car = (at(s, 0.0)[0] for s in spec.sources)
    assert dog > car
    spec = parse_spatial_text("the piano is nearer than the singer", duration_s=D)
    assert [s.cls.name for s in spec.sources] == ["piano", "person"]
    piano, singer = (at(s, 0.0)[2] for s in spec.sources)
    assert piano < singer
    spec = parse_spatial_text("a car idles on the right and a dog barks to the left of the car",
                              duration_s=D)
    assert len(spec.sources) == 2
    car, dog = (at(s, 0.0)[0] for s in spec.sources)
    assert car == pytest.approx(-60.0) and dog == pytest.approx(-20.0)
    spec = parse_spatial_text("a cat far to the right, a dog in front of the cat", duration_s=D)
    (cat_az, _, cat_r), (dog_az, _, dog_r) = (at(s, 0.0) for s in spec.sources)
    assert dog_az == cat_az == pytest.approx(-80.0) and dog_r < cat_r


def test_two_sources_with_their_own_places_and_motions():
    spec = parse_spatial_text("A dog barks on the left while a car passes by from right to left",
                              duration_s=D)
    assert spec.placed
    dog, car = spec.sources
    assert dog.cls.name == "dog" and dog.labels(D)["position"] == "left"
    assert car.cls.name == "car" and car.labels(D)["motion"] == "right_to_left"
    assert "dog" in dog.prompt and "car" in car.prompt and "left" not in dog.prompt


def test_sounds_the_class_table_does_not_know():
    spec = parse_spatial_text("A violin plays on the right and a piano plays on the left, then "
                              "the violin moves to the front", duration_s=D)
    assert [(s.name, s.cls.name) for s in spec.sources] == [("violin", "sound source"),
                                                           ("piano", "piano")]
    violin, piano = spec.sources
    assert at(violin, 0.0)[0] == pytest.approx(-60.0) and at(violin, D)[0] == pytest.approx(0.0)
    assert at(piano, 0.0)[0] == pytest.approx(60.0)
    spec = parse_spatial_text("A man is walking from left to right in a quiet room", duration_s=D)
    assert [s.name for s in spec.sources] == ["man"] and spec.placed


@pytest.mark.parametrize("cls", SOUND_CLASSES, ids=lambda c: c.name)
def test_every_class_of_the_table_is_recognised(cls):
    word = cls.synonyms[0]
    src = only(parse_spatial_text(f"a {word} on the left", duration_s=D))
    assert src.cls is cls


@pytest.mark.parametrize("text", ["xyz", "", "a dog barks", "the weather is nice"])
def test_text_that_places_nothing(text):
    spec = parse_spatial_text(text, duration_s=D)
    assert not spec.placed
    with pytest.raises(InputError) as err:
        spec.require_placed()
    msg = str(err.value)
    assert "could not place" in msg and "understood" in msg
    if text == "xyz":
        assert "'xyz'" in msg
    if text == "a dog barks":
        assert "'dog'" in msg


def test_describe_says_what_was_understood():
    spec = parse_spatial_text("a police siren moves from the left to the right", duration_s=D)
    text = spec.describe()
    assert text.startswith("understood: 'police siren' moving left_to_right")
    assert "+70" in text and "-70" in text
    d = spec.to_dict()
    assert d["sources"][0]["motion"] == "left_to_right"
    assert len(d["sources"][0]["keyframes"]) >= 2


def test_normalize_text():
    assert normalize_text("Anti-Clockwise, in front of you") == "counterclockwise, front"
    assert normalize_text("2 metres to your left") == "2 m to the left"
    assert normalize_text("Five meters") == "5 m"


# --------------------------------------------------------------------------- LLM parser
class _ChatServer(ThreadingHTTPServer):
    """A chat-completions server on 127.0.0.1 that answers from a list; records requests."""

    daemon_threads = True

    def __init__(self, replies: list[str]) -> None:
        super().__init__(("127.0.0.1", 0), _ChatHandler)
        self.replies = list(replies)
        self.requests: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _ChatHandler(BaseHTTPRequestHandler):
    server: _ChatServer

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "body": body})
        text = self.server.replies.pop(0) if len(self.server.replies) > 1 else \
            self.server.replies[0]
        data = json.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": text}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data.encode())


@pytest.fixture
def chat_server():
    servers = []

    def start(replies: list[str]) -> _ChatServer:
        server = _ChatServer(replies)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


LLM_REPLY = json.dumps({"sources": [
    {"name": "violin", "keyframes": [{"t": 0, "azimuth_deg": -45, "distance_m": 3}]},
    {"name": "barking dog", "keyframes": [
        {"t": 0, "azimuth_deg": 90, "elevation_deg": 0, "distance_m": 2},
        {"t": 4, "azimuth_deg": 0, "elevation_deg": 0, "distance_m": 2}]}]})


def test_llm_parser_reads_the_reply(chat_server):
    from generators.audio.textllm import parse_with_llm
    from planners.mllm.backends import OpenAIChatBackend

    server = chat_server(["Sure! " + LLM_REPLY])
    text = "a violin on the front right, a dog runs from the left to the front"
    spec, notes = parse_with_llm(text, OpenAIChatBackend(server.url, "m"), duration_s=D)
    assert notes == [] and spec.placed
    assert [(s.name, s.cls.name) for s in spec.sources] == [("violin", "sound source"),
                                                           ("barking dog", "dog")]
    assert at(spec.sources[0], 1.0) == pytest.approx((-45.0, 0.0, 3.0))
    assert at(spec.sources[1], 2.0)[0] == pytest.approx(45.0)
    msgs = server.requests[0]["body"]["messages"]
    assert msgs[0]["role"] == "system" and "+90 = left" in msgs[0]["content"]
    assert msgs[-1]["content"].endswith(text)
    example = json.loads(msgs[2]["content"])  # the rule parser's reading of an example
    assert example["sources"][0]["keyframes"][0]["azimuth_deg"] == 70.0


def test_llm_parser_falls_back_to_the_rules(chat_server):
    from generators.audio.textllm import parse_with_llm
    from planners.mllm.backends import OpenAIChatBackend

    server = chat_server(["I cannot do that.", '{"sources": [{"name": "x", "keyframes": '
                                                '[{"t": 99, "azimuth_deg": 0}]}]}'])
    spec, notes = parse_with_llm("a dog barks on the left", OpenAIChatBackend(server.url, "m"),
                                 duration_s=D, retries=1)
    assert len(server.requests) == 2
    assert "no JSON" in notes[0] and "outside" in notes[1] and "rule parser" in notes[-1]
    assert at(only(spec), 0.0)[0] == pytest.approx(60.0)


def test_foa_cli_with_the_llm_parser(chat_server, tmp_path, capsys):
    from spa2v.cli import main

    server = chat_server([LLM_REPLY])
    out, truth = tmp_path / "l.wav", tmp_path / "l.json"
    assert main(["foa", "--text", "a violin and a dog", "--parser", "llm", "--llm-endpoint",
                 server.url, "--llm-model", "m", "--sr", "16000", "-o", str(out), "--truth",
                 str(truth), "-q"]) == 0
    t = json.loads(truth.read_text())
    assert [s["name"] for s in t["sources"]] == ["violin", "barking dog"]
    assert t["sources"][1]["motion"] == "left_to_right"
    assert main(["foa", "--text", "on the left", "--parser", "llm", "-o",
                 str(tmp_path / "m.wav")]) == 2
    assert "--llm-endpoint" in capsys.readouterr().err
