"""json_stream.read_object: an object parsed a piece at a time gives what
json.load gives, whatever the pieces' size, and refuses what it refuses."""

from __future__ import annotations

import io
import json
import random

import pytest

from run_testsuite import json_stream
from run_testsuite.json_stream import read_object


def document(rng: random.Random, count: int) -> dict:
    def entry(n: int) -> dict:
        return {
            "name": f"t{n}-é\\\"x" * rng.randint(1, 3),
            "status": rng.choice(["PASS", "FAIL"]),
            "duration": rng.random() * 10 ** rng.randint(-6, 6),
            "start": 1.7e9 + n,
            "slot": rng.choice([None, n % 7, -12]),
            "tags": [str(t) for t in range(rng.randint(0, 3))],
            "ok": rng.choice([True, False]),
            "nested": {"list": [[1, 2.5e-8], {"a": "]},["}], "n": 12345678901234567890},
        }

    return {"format": 1, "command_line": ['"results":[', "x"], "results": [entry(n) for n in range(count)], "end": 7}


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_pieces_of_any_size_give_what_json_load_gives(monkeypatch, chunk):
    monkeypatch.setattr(json_stream, "CHUNK", chunk)
    rng = random.Random(chunk)
    for count in (0, 1, 5, 40):
        data = document(rng, count)
        for text in (json.dumps(data), json.dumps(data, indent=2), json.dumps(data, separators=(",", ":"))):
            seen = []
            found = read_object(io.StringIO(text), "results", lambda item: seen.append(item) or len(seen))
            assert seen == data["results"]
            assert found == {**data, "results": list(range(1, count + 1))}


@pytest.mark.parametrize(
    "text",
    ["", "[]", "{", '{"results": [1, 2}', '{"results": [1,, 2]}', '{"a": 1} {"b": 2}', '{"a" 1}', '{1: 2}', '{"a": tru}'],
)
def test_what_is_not_one_json_object_is_refused(monkeypatch, text):
    monkeypatch.setattr(json_stream, "CHUNK", 2)
    with pytest.raises(ValueError):
        read_object(io.StringIO(text), "results", lambda item: item)


def test_a_number_cut_at_the_end_of_a_piece_is_read_whole(monkeypatch):
    monkeypatch.setattr(json_stream, "CHUNK", 4)
    assert read_object(io.StringIO('{"a": 123456789, "b": [1.5e10]}'), "b", lambda x: x) == {
        "a": 123456789,
        "b": [1.5e10],
    }


@pytest.mark.parametrize("chunk", range(1, 41))
def test_a_number_cut_after_its_point_or_exponent_is_read_whole(monkeypatch, chunk):
    monkeypatch.setattr(json_stream, "CHUNK", chunk)
    data = {"start": 1712345678.123456, "x": -2.5e-10, "y": 3e8, "results": [{"d": 0.004}], "duration": 12.75}
    assert read_object(io.StringIO(json.dumps(data)), "results", lambda item: item) == data
