"""The evaluation harness: its tracker, its metrics, and a whole small run on a tiny random model."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from anyi2v.cli import main as cli_main
from anyi2v.daemon.pipeline.loading import load_models
from anyi2v.daemon.pipeline.models import random_models
from anyi2v.daemon.toyworld.evaluate import (
    boundary_f_score,
    held_out_shots,
    paired_difference,
    run_evaluation,
    track_centres,
    trajectory_error,
    write_report,
)
from anyi2v.daemon.toyworld.train import HELD_OUT_SEEDS

FAST = {"inversion_timestep": 5, "optimization_steps": 1, "optimization_iterations": 2, "injection_steps": 1}


def moving_square(shift: tuple[int, int], frames: int = 6) -> np.ndarray:
    generator = np.random.default_rng(0)
    texture = (generator.random((12, 12, 3)) * 255).astype(np.uint8)
    clip = np.full((frames, 64, 64, 3), 40, np.uint8)
    for f in range(frames):
        y, x = 10 + shift[1] * f, 8 + shift[0] * f
        clip[f, y : y + 12, x : x + 12] = texture
    return clip


def test_the_tracker_follows_a_textured_square() -> None:
    clip = moving_square((3, 2))
    centres = track_centres(clip, np.array([8.0, 10.0, 20.0, 22.0]))
    expected = np.array([[14 + 3 * f, 16 + 2 * f] for f in range(6)], dtype=float)
    np.testing.assert_allclose(centres, expected, atol=0.5)
    target = np.array([[8 + 3 * f, 10 + 2 * f, 20 + 3 * f, 22 + 2 * f] for f in range(6)], dtype=float)
    assert trajectory_error(centres, target) < 0.5
    assert trajectory_error(centres, target + np.array([4, 0, 4, 0])) == pytest.approx(4.0, abs=0.5)


def test_boundary_f_score_tolerates_two_pixels_and_no_more() -> None:
    truth = np.zeros((40, 40), bool)
    truth[10:30, 20] = True
    assert boundary_f_score(truth, truth) == 1.0
    assert boundary_f_score(np.roll(truth, 2, axis=1), truth) == 1.0
    assert boundary_f_score(np.roll(truth, 5, axis=1), truth) == 0.0
    half = truth.copy()
    half[20:30] = False
    assert 0.5 < boundary_f_score(half, truth) < 1.0  # precise but half the recall
    assert boundary_f_score(np.zeros_like(truth), truth) == 0.0
    assert boundary_f_score(np.zeros_like(truth), np.zeros_like(truth)) == 1.0


def test_held_out_shots_are_unseen_deterministic_and_their_tracker_error_is_small() -> None:
    shots = held_out_shots(3, size=64, frames=6, steps=2)
    again = held_out_shots(3, size=64, frames=6, steps=2)
    assert all(s.seed >= HELD_OUT_SEEDS for s in shots)
    assert [s.shot.prompt for s in shots] == [s.shot.prompt for s in again]
    tracked, standing = [], []
    for held in shots:
        assert held.condition.shape == (64, 64, 3)
        assert held.clip.shape == (6, 64, 64, 3)
        assert held.target.shape == (6, 4)
        assert len(held.shot.tracks) == 1
        tracked.append(trajectory_error(track_centres(held.clip, held.target[0]), held.target))
        still = np.repeat((held.target[:1, :2] + held.target[:1, 2:]) / 2, len(held.target), axis=0)
        standing.append(trajectory_error(still, held.target))
    # On the ground-truth clips the tracker follows the objects: well under the error of "nothing moved".
    assert np.mean(tracked) < 0.5 * np.mean(standing)
    modalities = [s.shot.conditions[0].modality for s in shots]
    assert len(set(modalities)) == 3  # the modalities take turns


def test_a_small_evaluation_writes_its_report(tmp_path: Path) -> None:
    models = random_models("tiny", seed=0, tokenizer_dir=tmp_path / "tokenizer")
    shots = held_out_shots(2, size=64, frames=4, steps=2, method=FAST)
    results = run_evaluation(models, shots, ["no control", "AnyI2V"])
    assert set(results) == {"no control", "AnyI2V"}
    assert all(len(r.errors) == 2 for r in results.values())
    assert not np.array_equal(results["no control"].sample[1], results["AnyI2V"].sample[1])
    report = write_report(tmp_path / "report", results, shots, "anyi2v eval (test)", "tiny-random")
    text = report.read_text()
    assert "| AnyI2V |" in text
    assert "| no control |" in text
    summary = json.loads((tmp_path / "report" / "results.json").read_text())
    assert summary["modes"]["no control"]["relative_to_no_control"] == pytest.approx(1.0)
    difference = summary["modes"]["no control"]["minus_anyi2v_px"]
    assert difference == pytest.approx(np.mean(results["no control"].errors) - np.mean(results["AnyI2V"].errors))
    assert f"{difference:+.2f} ± " in text  # the paired difference is in the table
    assert summary["per_shot"]["AnyI2V"]["trajectory_error_px"] == results["AnyI2V"].errors
    assert summary["per_shot"]["AnyI2V"]["background_delta_e"] == results["AnyI2V"].delta_es
    delta_e = summary["modes"]["AnyI2V"]["background_delta_e"]
    assert delta_e == pytest.approx(np.mean(results["AnyI2V"].delta_es))
    assert f"| {delta_e:.1f} ± " in text  # the background's distance to the prompt's is in the table
    assert all(math.isfinite(v) for mode in summary["modes"].values() for v in mode.values())
    assert (tmp_path / "report" / "plot.png").stat().st_size > 1000
    assert (tmp_path / "report" / "contact_sheet.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="unknown modes"):
        run_evaluation(models, shots, ["magic"])


def test_worker_processes_give_the_results_one_process_gives(tmp_path: Path) -> None:
    load = functools.partial(random_models, "tiny", seed=0, tokenizer_dir=tmp_path / "tokenizer")
    shots = held_out_shots(3, size=64, frames=4, steps=2, method=FAST)
    modes = ["no control", "AnyI2V"]
    alone = run_evaluation(load(), shots, modes)
    reports: list[list[str]] = []
    shared = run_evaluation(load, shots, modes, finished=lambda results: reports.append(list(results)), workers=2)
    assert list(shared) == modes
    assert reports == [["no control"], ["no control", "AnyI2V"]]  # a report after each finished mode
    for mode in modes:
        assert len(shared[mode].first_frames) == 3
        for mine, theirs in zip(shared[mode].first_frames, alone[mode].first_frames, strict=True):
            assert np.abs(mine.astype(int) - theirs).max() <= 2  # the same shots, in the same order
        assert len(shared[mode].sample) == 4  # shot 0's frames came back from its worker
    with pytest.raises(RuntimeError, match=r"(?s)worker failed.*model source not found"):
        run_evaluation(functools.partial(load_models, tmp_path / "missing"), shots, modes, workers=2)


def test_the_eval_command_runs_and_refuses_unknown_modes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    base = ["eval", "--model", "tiny-random", "--out", str(tmp_path / "out"), "--shots", "1", "--size", "64",
            "--frames", "4", "--steps", "2", "--inversion-timestep", "5"]  # fmt: skip
    assert cli_main([*base, "--modes", "no control,AnyI2V"]) == 0
    assert "| AnyI2V |" in capsys.readouterr().out
    assert (tmp_path / "out" / "report.md").is_file()
    assert cli_main([*base, "--modes", "AnyI2V,teleport"]) == 2
    assert "unknown modes" in capsys.readouterr().err
    assert cli_main([*base, "--workers", "0"]) == 2
    assert "--workers must be at least 1, not 0" in capsys.readouterr().err


def test_paired_difference_is_the_mean_shot_by_shot_difference_with_its_interval() -> None:
    difference, spread = paired_difference([3.0, 5.0, 7.0], [1.0, 2.0, 3.0])
    assert difference == pytest.approx(3.0)  # differences 2, 3, 4
    assert spread == pytest.approx(1.96 * 1.0 / math.sqrt(3))  # their standard deviation is 1
    # A constant offset between modes is told apart exactly, however noisy the shots are.
    assert paired_difference([10.0, 50.0, 90.0], [9.0, 49.0, 89.0]) == (pytest.approx(1.0), pytest.approx(0.0))
    assert math.isnan(paired_difference([1.0], [2.0])[1])
