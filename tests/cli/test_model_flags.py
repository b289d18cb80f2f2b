"""The model flags of `anyi2v animate` and `anyi2v daemon`: library names or paths, one line per refusal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from anyi2v.cli import build_parser, main
from anyi2v.daemon.pipeline import assembly
from anyi2v.shared.document import load_shot
from tests.daemon.model_files import Parts, sd15_parts, write_configs, write_library, write_sdxl_lora

FLAGS = ("--models-dir", "--model", "--motion-module", "--lora", "--motion-lora", "--vae", "--scheduler", "--tokenizer")
FRAMES = 4


@pytest.fixture(scope="module")
def parts() -> Parts:
    return sd15_parts(seed=0)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, parts: Parts) -> Path:
    return write_library(tmp_path_factory.mktemp("flags") / "models", parts)


@pytest.fixture
def tiny_configs(tmp_path: Path, parts: Parts, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tiny checkpoint's configs (and a tokenizer) in place of the shipped SD 1.5 ones."""
    configs = write_configs(tmp_path / "configs", parts)
    monkeypatch.setattr(assembly, "SD15_CONFIG_DIR", configs)
    return configs


def write_shot(folder: Path, model: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ys, xs = np.mgrid[0:64, 0:64] / 64
    image = np.stack([xs, ys, np.hypot(xs - 0.3, ys - 0.4) < 0.2], axis=2) * 255
    Image.fromarray(image.astype(np.uint8)).save(folder / "c.png")
    document: dict[str, Any] = {
        "schema_version": 4,
        "prompt": "a red ball",
        "output": {"width": 64, "height": 64, "n_frames": FRAMES, "fps": 8},
        "sampling": {"seed": 1, "steps": 2},
        "conditions": [{"source": {"kind": "image", "path": "c.png"}, "modality": "depth"}],
        "tracks": [{"id": "ball", "keyframes": [{"frame": 0, "box": [0.1, 0.2, 0.5, 0.6]},
                                                {"frame": FRAMES - 1, "box": [0.4, 0.3, 0.9, 0.8]}]}],
        "method": {"inversion_timestep": 5, "injection_steps": 1, "optimization_steps": 1,
                   "optimization_iterations": 1},
    }  # fmt: skip
    if model is not None:
        document["model"] = model
    path = folder / "shot.json"
    path.write_text(json.dumps(document))
    return path


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


# --- parsing ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["animate", "daemon"])
def test_the_same_flags_parse_on_animate_and_daemon(command: str) -> None:
    head = ["animate", "shot.json", "--out", "o.gif"] if command == "animate" else ["daemon"]
    arguments = build_parser().parse_args(
        [*head, "--models-dir", "/lib", "--model", "checkpoints/realisticVision", "--motion-module", "v3_sd15_mm",
         "--lora", "detail_tweaker:0.8", "--lora", "loras/film grain", "--motion-lora", "v2_lora_ZoomIn:-1.5",
         "--vae", "vae-ft-mse", "--scheduler", "euler", "--tokenizer", "/tok"]
    )  # fmt: skip
    assert arguments.models_dir == Path("/lib")
    assert arguments.model == "checkpoints/realisticVision"
    assert arguments.motion_module == "v3_sd15_mm"
    assert arguments.loras == [("detail_tweaker", 0.8), ("loras/film grain", 1.0)]
    assert arguments.motion_loras == [("v2_lora_ZoomIn", -1.5)]
    assert (arguments.vae, arguments.scheduler, arguments.tokenizer) == ("vae-ft-mse", "euler", Path("/tok"))
    old = build_parser().parse_args([*head, "--motion-adapter", "mm_sd_v15_v2.ckpt"])
    assert old.motion_module == "mm_sd_v15_v2.ckpt"  # the old name still works
    assert old.loras is None  # none given: the shot's (or the default) apply


@pytest.mark.parametrize("command", ["animate", "daemon"])
def test_help_lists_the_flags_and_hides_the_old_name(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([command, "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    for flag in FLAGS:
        assert flag in text, flag
    assert "--motion-adapter" not in text
    assert "NAME[:WEIGHT]" in text


@pytest.mark.parametrize(
    ("flag", "value", "words"),
    [
        ("--lora", "detail:9", "from -4 to 4"),
        ("--lora", "detail:strong", "'strong' is not a weight"),
        ("--motion-lora", "zoom:nan", "finite"),
        ("--scheduler", "dpm++", "invalid choice"),
    ],
)
def test_bad_flag_values_exit_2_naming_the_flag(
    flag: str, value: str, words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["daemon", flag, value])
    assert caught.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert flag in error
    assert words in error


# --- the daemon's default model ----------------------------------------------------------------------------


def test_the_daemon_flags_fill_the_worker_config(library: Path, tmp_path: Path) -> None:
    from anyi2v.serve import daemon_config

    arguments = build_parser().parse_args(
        ["daemon", "--data-dir", str(tmp_path / "data"), "--models-dir", str(library), "--model", "tiny_sd15",
         "--motion-module", "mm_sd_v15_v2", "--lora", "detail_tweaker:0.8", "--motion-lora", "v2_lora_ZoomIn:0.5",
         "--vae", "tiny_vae", "--scheduler", "euler", "--tokenizer", str(tmp_path / "tok"), "--device", "cpu",
         "--low-memory"]
    )  # fmt: skip
    worker = daemon_config(arguments).worker
    assert (worker.model, worker.motion_adapter, worker.vae) == ("tiny_sd15", "mm_sd_v15_v2", "tiny_vae")
    assert worker.loras == (("detail_tweaker", 0.8),)
    assert worker.motion_loras == (("v2_lora_ZoomIn", 0.5),)
    assert (worker.scheduler, worker.models_dir) == ("euler", str(library))
    assert (worker.tokenizer, worker.device, worker.low_memory) == (str(tmp_path / "tok"), "cpu", True)
    plain = daemon_config(build_parser().parse_args(["daemon", "--data-dir", str(tmp_path / "data")])).worker
    assert (plain.model, plain.loras, plain.motion_loras, plain.vae, plain.scheduler) == (None, (), (), None, None)
    assert plain.low_memory is False


def test_the_daemon_refuses_a_bad_name_before_it_starts(
    library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["daemon", "--data-dir", str(tmp_path / "data"), "--models-dir", str(library), "--lora", "xl_style"])
    assert status == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("anyi2v daemon: --lora 'xl_style': ")
    assert "xl_style.safetensors" in line
    assert "SD XL LoRA" in line
    assert not (tmp_path / "data").exists()  # nothing started


# --- animate by name ---------------------------------------------------------------------------------------


def test_animate_runs_a_checkpoint_motion_module_and_loras_chosen_by_name(
    library: Path, tiny_configs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shot = write_shot(tmp_path / "shot")
    out = tmp_path / "out" / "clip.gif"
    status = main(
        ["animate", str(shot), "--out", str(out), "--device", "cpu", "--models-dir", str(library),
         "--model", "tiny_sd15", "--motion-module", "mm_sd_v15_v2", "--lora", "detail_tweaker:0.8",
         "--motion-lora", "v2_lora_ZoomIn:0.5", "--vae", "tiny_vae"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert decoded_frames(out) == FRAMES
    assert "model sd15-file:tiny_sd15.safetensors" in captured.err


def test_a_shots_model_section_runs_with_no_flags(
    library: Path, tiny_configs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = {"checkpoint": "checkpoints/tiny_sd15", "motion_module": "mm_sd_v15_v2",
             "loras": [{"name": "detail_tweaker", "weight": 0.8}]}  # fmt: skip
    shot = write_shot(tmp_path / "shot", model)
    out = tmp_path / "out" / "clip.gif"
    status = main(["animate", str(shot), "--out", str(out), "--device", "cpu", "--models-dir", str(library)])
    assert status == 0, capsys.readouterr().err
    assert decoded_frames(out) == FRAMES


def test_flags_override_the_shots_choice(library: Path, tmp_path: Path) -> None:
    from anyi2v.model_flags import chosen_sources

    shot_path = write_shot(tmp_path / "shot", {"checkpoint": "sdxl_base", "loras": [{"name": "xl_style"}],
                                               "motion_module": "mm_sd_v15_v2", "scheduler": "lcm"})  # fmt: skip
    shot = load_shot(shot_path)
    arguments = build_parser().parse_args(
        ["animate", str(shot_path), "--out", "o.gif", "--model", "tiny_sd15", "--lora", "detail_tweaker:0.5"]
    )
    sources = chosen_sources(arguments, shot, str(shot_path))
    assert sources.checkpoint is not None
    assert (sources.checkpoint.value, sources.checkpoint.label) == ("tiny_sd15", "--model")
    assert [(chosen.value, chosen.weight, chosen.label) for chosen in sources.loras] == [
        ("detail_tweaker", 0.5, "--lora")
    ]
    assert sources.motion_module is not None
    assert sources.motion_module.label == f"{shot_path}: model.motion_module"  # from the shot: a name only
    assert not sources.motion_module.paths_allowed


@pytest.mark.parametrize(
    ("flags", "model", "starts", "words"),
    [
        (["--model", "tiny_sd16"], None, "--model 'tiny_sd16': ", ["no checkpoint named", "anyi2v models"]),
        (["--model", "half_download"], None, "--model 'half_download': ", ["half_download.safetensors", "truncated"]),
        (["--lora", "xl_style"], None, "--lora 'xl_style': ", ["xl_style.safetensors", "SD XL LoRA"]),
        ([], {"checkpoint": "tiny_sd16"}, "shot.json: model.checkpoint 'tiny_sd16': ", ["no checkpoint named"]),
        (["--model", "tiny-random", "--lora", "detail_tweaker"], None, "--lora 'detail_tweaker': ", ["random"]),
    ],
)
def test_bad_model_choices_exit_2_with_one_line(
    library: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    model: dict[str, Any] | None,
    starts: str,
    words: list[str],
) -> None:
    shot = write_shot(tmp_path / "shot", model)
    out = tmp_path / "clip.gif"
    status = main(["animate", str(shot), "--out", str(out), "--device", "cpu", "--models-dir", str(library), *flags])
    assert status == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("anyi2v animate: ")
    assert starts in line
    for word in words:
        assert word in line
    assert not out.exists()


def test_a_path_of_another_family_exits_2_naming_the_file(
    library: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    xl = write_sdxl_lora(tmp_path / "my_xl_lora.safetensors")
    shot = write_shot(tmp_path / "shot")
    assert main(["animate", str(shot), "--out", str(tmp_path / "c.gif"), "--models-dir", str(library),
                 "--model", "tiny_sd15", "--lora", f"{xl}:0.7"]) == 2  # fmt: skip
    line = one_line(capsys.readouterr().err)
    assert f"--lora {str(xl)!r}: {xl}: SD XL LoRA" in line


def test_a_missing_motion_module_is_asked_for_by_its_flag(
    library: Path, tiny_configs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shot = write_shot(tmp_path / "shot")
    status = main(["animate", str(shot), "--out", str(tmp_path / "c.gif"), "--device", "cpu",
                   "--models-dir", str(library), "--model", "tiny_sd15"])  # fmt: skip
    assert status == 2
    line = one_line(capsys.readouterr().err)
    assert "tiny_sd15.safetensors" in line
    assert "pass --motion-module" in line
    assert "motion_adapter=" not in line


def test_with_a_daemon_the_flags_name_its_models_in_the_shot(
    library: Path, parts: Parts, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from anyi2v.daemon.client import DaemonClient
    from anyi2v.daemon.worker import WorkerConfig
    from tests.daemon.daemon_helpers import running_server, wait_ready

    configs = write_configs(tmp_path / "configs", parts)
    shot = write_shot(tmp_path / "shot")
    out = tmp_path / "clip.mp4"
    worker = WorkerConfig(model="tiny-random", device="cpu", models_dir=str(library), config_dir=str(configs))
    with running_server(tmp_path / "data", worker=worker) as server:
        with DaemonClient(server.address) as client:
            wait_ready(client)
        status = main(["animate", str(shot), "--out", str(out), "--daemon", server.address, "--model", "tiny_sd15",
                       "--motion-module", "mm_sd_v15_v2", "--lora", "detail_tweaker:0.5"])  # fmt: skip
        assert status == 0, capsys.readouterr().err
        with DaemonClient(server.address) as client:
            loaded = client.models().loaded
    assert decoded_frames(out) == FRAMES
    written = json.loads(out.with_name("clip.mp4.shot.json").read_text())
    assert written["model"]["checkpoint"] == "tiny_sd15"
    assert written["model"]["loras"] == [{"name": "detail_tweaker", "weight": 0.5}]
    assert loaded is not None
    assert (loaded.checkpoint, loaded.motion_module) == ("tiny_sd15", "mm_sd_v15_v2")
    assert json.loads(shot.read_text()).get("model") is None  # the user's file is left as it was
