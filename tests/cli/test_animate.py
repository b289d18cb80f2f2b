"""`anyi2v animate` end to end on the CPU with the seeded tiny random model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import pytest

from anyi2v.cli import main
from tests.conftest import EXAMPLES

SHOT = EXAMPLES / "quick_preview.json"


def test_animate_writes_a_video_and_the_shot_it_came_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "result" / "clip.gif"
    assert main(["animate", str(SHOT), "--model", "tiny-random", "--out", str(out)]) == 0
    with av.open(str(out)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 16
    assert (frames[0].width, frames[0].height) == (128, 128)
    traced = json.loads(out.with_name("clip.gif.shot.json").read_text())
    assert traced["prompt"] == json.loads(SHOT.read_text())["prompt"]
    assert [track["id"] for track in traced["tracks"]] == ["ball"]
    captured = capsys.readouterr()
    assert "inversion" in captured.err
    assert "timings:" in captured.err


def test_animate_names_a_missing_model_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "clip.mp4"
    assert main(["animate", str(SHOT), "--model", str(tmp_path / "no-such-model"), "--out", str(out)]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(("flags", "expected"), [(["--scheduler", "euler"], "euler"), ([], "lcm")])
def test_animate_samples_with_the_chosen_scheduler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, flags: list[str], expected: str
) -> None:
    """``--scheduler`` (over the shot's ``model.scheduler``, else the shot's) reaches the sampler; no note
    says it is unused, and the shot written beside the video names the sampler that ran."""
    from anyi2v.daemon.pipeline.samplers import Sampler, build_sampler

    from .test_model_flags import FRAMES, decoded_frames, write_shot

    used: list[str | None] = []

    def spy(name: str | None, *rest: Any) -> Sampler:
        used.append(name)
        return build_sampler(name, *rest)

    monkeypatch.setattr("anyi2v.daemon.pipeline.generate.build_sampler", spy)
    shot = write_shot(tmp_path / "shot", {"scheduler": "lcm"})
    out = tmp_path / "out" / "clip.gif"
    status = main(["animate", str(shot), "--model", "tiny-random", "--device", "cpu", "--out", str(out), *flags])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert used == [expected]
    assert decoded_frames(out) == FRAMES
    assert "note:" not in captured.err
    assert json.loads(out.with_name("clip.gif.shot.json").read_text())["model"]["scheduler"] == expected


def test_low_memory_reaches_the_pipeline_and_is_refused_with_a_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from anyi2v.daemon.pipeline import generate as pipeline

    asked: list[bool] = []
    run = pipeline.generate

    def spy(*args: Any, **options: Any) -> Any:
        asked.append(options["low_memory"])
        return run(*args, **options)

    monkeypatch.setattr(pipeline, "generate", spy)
    out = tmp_path / "clip.gif"
    assert main(["animate", str(SHOT), "--model", "tiny-random", "--out", str(out), "--low-memory"]) == 0
    assert asked == [True]
    remote = ["animate", str(SHOT), "--daemon", "tcp://127.0.0.1:9", "--out", str(tmp_path / "r.gif"), "--low-memory"]
    assert main(remote) == 2
    assert "anyi2v daemon --low-memory" in capsys.readouterr().err
    assert not (tmp_path / "r.gif").exists()
