"""Shot files from a careless or hostile source (issue 19, item 14): devices and FIFOs, numbers too long
to convert, nesting too deep, duplicate keys and symlinks out of the shot's folder. Each is one
``ShotError`` naming the file and where, never a traceback, a hang or a silently chosen value."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from anyi2v.shared.document import MAX_JSON_DEPTH, load_checked_shot, load_shot, missing_files, parse_shot
from anyi2v.shared.errors import ShotError
from anyi2v.shared.shot import SCHEMA_VERSION

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")


def minimal() -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "prompt": "a red ball",
        "conditions": [{"source": {"kind": "image", "path": "ball.png"}, "modality": "depth"}],
        "tracks": [{"id": "ball", "keyframes": [{"frame": 0, "box": [0.1, 0.4, 0.3, 0.6]}]}],
    }


def problems_of(data: str | bytes) -> list[str]:
    with pytest.raises(ShotError) as caught:
        parse_shot(data)
    return [str(problem) for problem in caught.value.problems]


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO with no writer. Should the reader block on it, a writer comes after 5 s with ``{}`` so that
    the test fails instead of hanging."""
    path = tmp_path / "shot.json"
    os.mkfifo(path)

    def unblock() -> None:
        with path.open("wb") as writer:
            writer.write(b"{}")

    timer = threading.Timer(5.0, unblock)
    timer.start()
    yield path
    timer.cancel()


@needs_fifo
def test_a_fifo_is_refused_without_opening_it(fifo: Path) -> None:
    with pytest.raises(ShotError) as caught:
        load_shot(fifo)
    assert caught.value.source == str(fifo)
    assert [str(problem) for problem in caught.value.problems] == ["not a regular file (a FIFO); a shot is a JSON file"]


def test_a_device_is_refused_without_reading_it() -> None:
    device = Path(os.devnull)
    if not device.exists() or device.is_file():
        pytest.skip("no character device to try")
    with pytest.raises(ShotError) as caught:
        load_shot(device)
    assert "not a regular file (a character device)" in str(caught.value)


def test_a_file_that_grew_after_stat_is_read_only_up_to_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracemalloc

    import anyi2v.shared.document as document

    path = tmp_path / "shot.json"
    with path.open("wb") as handle:
        handle.truncate(20 * 2**20)  # sparse: costs no disk
    monkeypatch.setattr(document, "MAX_DOCUMENT_BYTES", 1000)
    real_stat, real_fstat = os.stat, os.fstat

    def small(result: os.stat_result) -> os.stat_result:
        fields = list(result)
        fields[6] = 10  # st_size as it was before the file grew
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", lambda target, *a, **k: small(real_stat(target, *a, **k)))
    monkeypatch.setattr(os, "fstat", lambda fd: small(real_fstat(fd)))
    tracemalloc.start()
    try:
        with pytest.raises(ShotError, match="too large for a shot"):
            load_shot(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20


def test_an_integer_of_5000_digits_is_refused_where_it_is() -> None:
    text = json.dumps(minimal()).replace('"prompt"', '"sampling": {"seed": ' + "7" * 5000 + '}, "prompt"')
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith("sampling.seed: an integer of 5000 digits")


def test_a_schema_version_of_5000_digits_is_refused() -> None:
    problems = problems_of('{"schema_version": ' + "3" * 5000 + "}")
    assert problems == [f"schema_version: an integer of 5000 digits is too long (at most {100} digits)"]


def test_json_nested_400_deep_is_refused_naming_the_field() -> None:
    document = minimal()
    text = json.dumps(document).replace('"a red ball"', "[" * 400 + "]" * 400)
    problems = problems_of(text)
    assert len(problems) == 1
    assert problems[0].startswith("prompt: ")
    assert f"nested too deeply (more than {MAX_JSON_DEPTH} levels)" in problems[0]


def test_json_nested_deeper_than_the_parser_goes_is_one_problem() -> None:
    problems = problems_of("[" * 100_000 + "]" * 100_000)
    assert len(problems) == 1
    assert f"nested too deeply (more than {MAX_JSON_DEPTH} levels)" in problems[0]


def test_a_valid_shot_is_far_from_the_depth_limit() -> None:
    document = minimal()
    document["scene"] = {
        "path": "a.glb",
        "camera": {"eye": [0, 0, 3]},
        "anchors": [{"track": "floor", "bounds": [[0, 0, 0], [1, 1, 1]]}],
    }
    parse_shot(json.dumps(document))
    assert MAX_JSON_DEPTH >= 16


def test_duplicate_keys_are_refused_naming_the_key_and_where() -> None:
    text = json.dumps(minimal())
    text = text.replace('"prompt": "a red ball"', '"prompt": "a red ball", "prompt": "a blue ball"')
    text = text.replace('"frame": 0,', '"frame": 0, "frame": 5,')
    problems = problems_of(text)
    why = "duplicate key: the object has it twice (JSON readers disagree on which one wins)"
    assert problems == [f"prompt: {why}", f"tracks[0].keyframes[0].frame: {why}"]


def test_every_problem_of_the_text_is_listed_at_once() -> None:
    text = json.dumps(minimal())
    text = text.replace('"prompt": "a red ball"', '"prompt": "a", "prompt": "b", "name": ' + "[" * 80 + "]" * 80)
    text = text.replace('"frame": 0,', '"frame": ' + "1" * 200 + ",")
    wheres = [problem.split(": ")[0] for problem in problems_of(text)]
    assert wheres == ["prompt", "name", "tracks[0].keyframes[0].frame"]


def test_a_decoded_document_is_checked_for_depth_too() -> None:
    document = minimal()
    nested: list[Any] = []
    for _ in range(300):
        nested = [nested]
    document["negative_prompt"] = nested
    problems = problems_of(json.dumps(document))
    assert [problem.split(": ")[0] for problem in problems] == ["negative_prompt"]
    with pytest.raises(ShotError, match="nested too deeply"):
        parse_shot(document)


def _shot_folder(tmp_path: Path, image_path: str) -> Path:
    folder = tmp_path / "shot"
    folder.mkdir()
    document = minimal()
    document["conditions"][0]["source"]["path"] = image_path
    (folder / "shot.json").write_text(json.dumps(document))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"png")
    return folder


def test_a_symlink_out_of_the_shots_folder_is_refused(tmp_path: Path) -> None:
    folder = _shot_folder(tmp_path, "ball.png")
    (folder / "ball.png").symlink_to(tmp_path / "outside" / "secret.png")
    with pytest.raises(ShotError) as caught:
        load_checked_shot(folder / "shot.json", max_frames=32)
    [problem] = caught.value.problems
    assert problem.where == "conditions[0].source.path"
    assert "symbolic link" in problem.why
    assert "out of the shot's folder" in problem.why
    assert caught.value.source == str(folder / "shot.json")


def test_a_symlinked_folder_out_of_the_shots_folder_is_refused(tmp_path: Path) -> None:
    folder = _shot_folder(tmp_path, "images/secret.png")
    (folder / "images").symlink_to(tmp_path / "outside", target_is_directory=True)
    shot = load_shot(folder / "shot.json")
    [problem] = missing_files(shot, folder)
    assert problem.where == "conditions[0].source.path"
    assert "out of the shot's folder" in problem.why


def test_symlinks_inside_the_folder_and_paths_that_say_they_leave_it_are_kept(tmp_path: Path) -> None:
    folder = _shot_folder(tmp_path, "ball.png")
    (folder / "real.png").write_bytes(b"png")
    (folder / "ball.png").symlink_to("real.png")
    load_checked_shot(folder / "shot.json", max_frames=32)
    # The studio writes a file outside the folder as ../ or absolute: the shot says so in plain sight.
    for explicit in ("../outside/secret.png", str(tmp_path / "outside" / "secret.png")):
        document = minimal()
        document["conditions"][0]["source"]["path"] = explicit
        (folder / "shot.json").write_text(json.dumps(document))
        load_checked_shot(folder / "shot.json", max_frames=32)
