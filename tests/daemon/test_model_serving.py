"""The daemon serves its model library: a job names its models, the worker loads only what differs.

The unit half drives :class:`~anyi2v.daemon.pipeline.model_cache.ModelCache` on tiny files written in the
real formats (``model_files``): a LoRA weight change reads no checkpoint again and gives the weights a
fresh load at that weight gives; taking the LoRA out gives the base back bit for bit. The daemon half runs
jobs that name a checkpoint, a motion module and a LoRA by library name through a real server.
"""

from __future__ import annotations

import gc
import json
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
import torch

from anyi2v.daemon.client import DaemonClient, DaemonError
from anyi2v.daemon.model_index import ModelIndex, choice_problems
from anyi2v.daemon.pipeline import model_cache
from anyi2v.daemon.pipeline.load_errors import ModelLoadError
from anyi2v.daemon.pipeline.loading import load_models
from anyi2v.daemon.pipeline.model_cache import ModelCache
from anyi2v.daemon.pipeline.model_choice import Chosen, ModelSources
from anyi2v.daemon.worker import WorkerConfig
from anyi2v.shared.shot import ModelChoice
from tests.daemon.daemon_helpers import condition_image, running_server, shot_document, wait_ready
from tests.daemon.model_files import (
    Parts,
    sd15_parts,
    write_configs,
    write_library,
    write_sd15_checkpoint,
)


def choice(data: dict[str, Any]) -> ModelChoice:
    return ModelChoice.model_validate_json(json.dumps(data))


LORA_LAYER = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"  # one the LoRA changes


@pytest.fixture(scope="module")
def parts() -> Parts:
    return sd15_parts(seed=0)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, parts: Parts) -> Path:
    folder = tmp_path_factory.mktemp("serving")
    library = write_library(folder / "models", parts)
    write_sd15_checkpoint(library / "checkpoints" / "other_sd15.safetensors", sd15_parts(seed=1))
    write_configs(folder / "configs", parts)
    return library


@pytest.fixture(scope="module")
def configs(root: Path) -> Path:
    return root.parent / "configs"


def sources(
    root: Path, checkpoint: str = "tiny_sd15", loras: tuple[tuple[str, float], ...] = (), **more: Any
) -> ModelSources:
    return ModelSources(
        checkpoint=Chosen(checkpoint, "--model"),
        motion_module=Chosen(more.get("motion_module", "mm_sd_v15_v2"), "--motion-module"),
        loras=tuple(Chosen(name, "--lora", weight=weight) for name, weight in loras),
        motion_loras=tuple(Chosen(name, "--motion-lora", weight=w) for name, w in more.get("motion_loras", ())),
        models_dir=root,
    )


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def fresh(
    root: Path, configs: Path, loras: list[tuple[str, float]] = (), motion_loras: list[tuple[str, float]] = ()
) -> Any:
    """The models a load from nothing gives (the truth the cache is compared with)."""
    return load_models(
        root / "checkpoints" / "tiny_sd15.safetensors",
        motion_adapter=root / "animatediff_models" / "mm_sd_v15_v2.safetensors",
        loras=[(root / "loras" / f"{name}.safetensors", weight) for name, weight in loras],
        motion_loras=[(root / "animatediff_motion_lora" / f"{name}.safetensors", w) for name, w in motion_loras],
        config_dir=configs,
        device="cpu",
    )


# --- the cache ----------------------------------------------------------------------------------------------


def test_a_lora_weight_change_reloads_nothing_else(root: Path, configs: Path) -> None:
    cache = ModelCache(device="cpu", config_dir=configs)
    steps: list[tuple[int, int]] = []
    models = cache.get(sources(root, loras=(("detail_tweaker", 0.8),)), on_step=lambda *step: steps.append(step))
    assert cache.loads == {"base": 1, "loras": 1}
    assert steps == [(0, 2), (1, 2), (2, 2)]
    unet = models.unet

    steps.clear()
    again = cache.get(sources(root, loras=(("detail_tweaker", 0.3),)), on_step=lambda *step: steps.append(step))
    assert again.unet is unet  # the same modules: no checkpoint was read
    assert cache.loads == {"base": 1, "loras": 2}
    assert steps == [(0, 1), (1, 1)]
    expected = fresh(root, configs, (("detail_tweaker", 0.3),))
    for name, value in weights(expected.unet).items():
        torch.testing.assert_close(unet.state_dict()[name], value, rtol=0, atol=1e-6, msg=name)
    for name, value in weights(expected.text_encoder).items():
        torch.testing.assert_close(again.text_encoder.state_dict()[name], value, rtol=0, atol=1e-6, msg=name)
    assert cache.names is not None
    assert cache.names["loras"] == [{"name": "detail_tweaker", "weight": 0.3}]


def test_taking_the_lora_out_gives_the_base_back_exactly(root: Path, configs: Path) -> None:
    cache = ModelCache(device="cpu", config_dir=configs)
    base = weights(cache.get(sources(root)).unet)
    text = weights(cache.models.text_encoder)  # type: ignore[union-attr]
    identity = cache.models.identity  # type: ignore[union-attr]
    lora = cache.get(sources(root, loras=(("detail_tweaker", 1.0),), motion_loras=(("v2_lora_ZoomIn", 0.7),)))
    assert not torch.equal(lora.unet.state_dict()[f"{LORA_LAYER}.weight"], base[f"{LORA_LAYER}.weight"])
    assert lora.identity != identity
    plain = cache.get(sources(root))
    assert cache.loads == {"base": 1, "loras": 2}
    assert plain.identity == identity
    for name, value in plain.unet.state_dict().items():
        assert torch.equal(value, base[name]), name
    for name, value in plain.text_encoder.state_dict().items():
        assert torch.equal(value, text[name]), name


def test_the_same_choice_loads_nothing(root: Path, configs: Path) -> None:
    cache = ModelCache(device="cpu", config_dir=configs)
    cache.get(sources(root, loras=(("detail_tweaker", 0.5),)))
    steps: list[tuple[int, int]] = []
    cache.get(sources(root, loras=(("detail_tweaker", 0.5),)), on_step=lambda *step: steps.append(step))
    assert steps == []
    assert cache.loads == {"base": 1, "loras": 1}


def test_another_checkpoint_lets_go_of_the_first(root: Path, configs: Path) -> None:
    cache = ModelCache(device="cpu", config_dir=configs)
    first = weakref.ref(cache.get(sources(root)).unet)
    second = cache.get(sources(root, "other_sd15"))
    gc.collect()
    assert first() is None, "the first checkpoint is still in memory"
    assert cache.loads["base"] == 2
    assert cache.names is not None
    assert cache.names["checkpoint"] == "other_sd15"
    assert second.unet is cache.models.unet  # type: ignore[union-attr]


def test_a_file_replaced_on_disk_is_loaded_again(root: Path, configs: Path, tmp_path: Path) -> None:
    library = tmp_path / "models"
    (library / "checkpoints").mkdir(parents=True)
    (library / "animatediff_models").mkdir()
    checkpoint = library / "checkpoints" / "tiny_sd15.safetensors"
    checkpoint.write_bytes((root / "checkpoints" / "tiny_sd15.safetensors").read_bytes())
    module = root / "animatediff_models" / "mm_sd_v15_v2.safetensors"
    (library / "animatediff_models" / "mm_sd_v15_v2.safetensors").write_bytes(module.read_bytes())
    cache = ModelCache(device="cpu", config_dir=configs)
    cache.get(sources(library))
    write_sd15_checkpoint(checkpoint, sd15_parts(seed=2))  # the artist saved a new version under the same name
    cache.get(sources(library))
    assert cache.loads["base"] == 2


def test_a_lora_that_fails_halfway_leaves_the_base_clean(
    root: Path, configs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ModelCache(device="cpu", config_dir=configs)
    base = weights(cache.get(sources(root)).unet)

    def breaks(models: Any, loras: Any, local_only: bool = True, keep: Any = None) -> None:
        parameter = models.unet.get_submodule(LORA_LAYER).weight
        keep(parameter)
        with torch.no_grad():
            parameter.add_(1.0)
        raise ModelLoadError("loras/detail_tweaker.safetensors: broken halfway (injected)")

    monkeypatch.setattr(model_cache, "fuse_loras", breaks)
    with pytest.raises(ModelLoadError, match="broken halfway"):
        cache.get(sources(root, loras=(("detail_tweaker", 1.0),)))
    for name, value in cache.models.unet.state_dict().items():  # type: ignore[union-attr]
        assert torch.equal(value, base[name]), name
    assert cache.names is not None
    assert cache.names["loras"] == []
    monkeypatch.undo()
    fused = cache.get(sources(root, loras=(("detail_tweaker", 1.0),)))  # the next try fuses for real
    assert cache.loads == {"base": 1, "loras": 1}  # counted: loads that ended; the base was not read again
    assert not torch.equal(fused.unet.state_dict()[f"{LORA_LAYER}.weight"], base[f"{LORA_LAYER}.weight"])


def test_an_unknown_name_loads_nothing_and_keeps_what_is_held(root: Path, configs: Path) -> None:
    cache = ModelCache(device="cpu", config_dir=configs)
    held = cache.get(sources(root))
    with pytest.raises(ModelLoadError, match="did you mean"):
        cache.get(sources(root, loras=(("detail_tweakr", 1.0),)))
    assert cache.models is held
    assert cache.loads == {"base": 1}


# --- the server's listing --------------------------------------------------------------------------------------


def test_the_index_checks_a_shots_names(root: Path, tmp_path: Path) -> None:
    listing = ModelIndex(root).scan()
    good = choice({"checkpoint": "tiny_sd15", "motion_module": "mm_sd_v15_v2", "loras": [{"name": "detail_tweaker"}]})
    assert choice_problems(good, listing) == []
    bad = choice({"checkpoint": "tiny_sd1", "vae": "detail_tweaker", "loras": [{"name": "a"}, {"name": "xl_style"}]})
    problems = {problem.where: problem.why for problem in choice_problems(bad, listing)}
    assert set(problems) == {"shot.model.checkpoint", "shot.model.vae", "shot.model.loras[0].name",
                             "shot.model.loras[1].name"}  # fmt: skip
    assert "did you mean 'checkpoints/tiny_sd15'" in problems["shot.model.checkpoint"]
    assert "is a lora" in problems["shot.model.vae"]
    assert "SD 1.5 only" in problems["shot.model.loras[1].name"]
    nothing = ModelIndex(tmp_path / "none").scan()
    assert "no model library" in choice_problems(good, nothing)[0].why
    assert choice_problems(choice({"checkpoint": "toy-world"}), nothing) == []


def test_a_rescan_reads_only_what_changed(root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from anyi2v.daemon.pipeline import library as library_module

    index = ModelIndex(root)
    first = index.scan()
    opened: list[Path] = []
    reader = library_module.read_safetensors_header
    monkeypatch.setattr(library_module, "read_safetensors_header", lambda path: opened.append(path) or reader(path))
    second = index.scan()
    assert opened == []
    assert [entry.name for entry in second.library.entries] == [entry.name for entry in first.library.entries]  # type: ignore[union-attr]


# --- the daemon ---------------------------------------------------------------------------------------------


def model_shot(weight: float, **more: Any) -> dict[str, Any]:
    shot = shot_document(frames=4, steps=2)
    shot["schema_version"] = 4
    shot["model"] = {"checkpoint": "tiny_sd15", "motion_module": "mm_sd_v15_v2",
                     "loras": [{"name": "detail_tweaker", "weight": weight}], **more}  # fmt: skip
    return shot


def run(client: DaemonClient, job_id: str, shot: dict[str, Any]) -> tuple[str, list[Any]]:
    client.submit(job_id, shot, condition_image())
    events = []
    for event in client.events(job_id):
        events.append(event)
        if event.type in ("done", "failed", "cancelled"):
            return event.type, events
    raise AssertionError("no final event")


def test_the_daemon_runs_jobs_on_models_named_in_the_shot(root: Path, configs: Path, tmp_path: Path) -> None:
    worker = WorkerConfig(model="tiny-random", device="cpu", models_dir=str(root), config_dir=str(configs))
    with running_server(tmp_path / "data", worker=worker) as server, DaemonClient(server.address) as client:
        wait_ready(client)
        deadline = time.monotonic() + 120
        while client.models().scanned == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        listing = client.models()
        assert listing.folder == str(root)
        assert listing.problem is None
        kinds = {model.name: model.kind for model in listing.models}
        assert kinds["checkpoints/tiny_sd15"] == "checkpoint"
        assert kinds["loras/detail_tweaker"] == "lora"
        assert listing.default.checkpoint == "tiny-random"
        assert listing.loaded is not None
        assert listing.loaded.checkpoint == "tiny-random"

        ended, events = run(client, "first", model_shot(0.8))
        assert ended == "done", events[-1].content
        loading = [e.content for e in events if e.type == "progress" and e.content.stage == "loading"]
        assert loading
        assert loading[-1].done == loading[-1].total == 2
        loaded = client.models().loaded
        assert loaded is not None
        assert loaded.checkpoint == "tiny_sd15"
        assert [(lora.name, lora.weight) for lora in loaded.loras] == [("detail_tweaker", 0.8)]

        ended, events = run(client, "weight", model_shot(0.2))  # a LoRA weight: one step, the base kept
        assert ended == "done", events[-1].content
        loading = [e.content for e in events if e.type == "progress" and e.content.stage == "loading"]
        assert loading[-1].total == 1

        ended, events = run(client, "same", model_shot(0.2))  # nothing to load
        assert ended == "done"
        assert not [e for e in events if e.type == "progress" and e.content.stage == "loading"]

        with pytest.raises(DaemonError) as refused:
            client.submit("unknown", model_shot(0.2, vae="no_such_vae"), condition_image())
        assert refused.value.code == "invalid_shot"
        assert [p.where for p in refused.value.problems] == ["shot.model.vae"]
        assert "vae entries: vae/tiny_vae" in refused.value.problems[0].why

        too_long = model_shot(0.2, motion_module="mm_sd_v15")  # v1: 24 frames
        too_long["output"]["n_frames"] = 30
        with pytest.raises(DaemonError) as refused:
            client.submit("long", too_long, condition_image())
        assert "24" in str(refused.value.problems)


def test_a_model_that_fails_to_load_fails_its_job_and_the_daemon_goes_on(
    root: Path, configs: Path, tmp_path: Path
) -> None:
    library = tmp_path / "models"
    for part in ("checkpoints/tiny_sd15.safetensors", "animatediff_models/mm_sd_v15_v2.safetensors",
                 "loras/detail_tweaker.safetensors"):  # fmt: skip
        (library / part).parent.mkdir(parents=True, exist_ok=True)
        (library / part).write_bytes((root / part).read_bytes())
    worker = WorkerConfig(model="tiny-random", device="cpu", models_dir=str(library), config_dir=str(configs))
    with running_server(tmp_path / "data", worker=worker) as server, DaemonClient(server.address) as client:
        wait_ready(client)
        deadline = time.monotonic() + 120
        while not client.models().models and time.monotonic() < deadline:
            time.sleep(0.2)
        lora = library / "loras" / "detail_tweaker.safetensors"
        lora.write_bytes(lora.read_bytes()[:200])  # cut after the listing: the worker finds out
        ended, events = run(client, "cut", model_shot(0.5))
        assert ended == "failed"
        failed = events[-1].content
        assert failed.reason == "invalid_input"
        assert "detail_tweaker" in failed.message
        assert "Traceback" not in failed.message
        shot = model_shot(0.5)
        shot["model"]["loras"] = []
        ended, events = run(client, "after", shot)
        assert ended == "done", events[-1].content


# --- the load timeout ----------------------------------------------------------------------------------------


class _Pipe:
    def __init__(self) -> None:
        self.messages: list[tuple[Any, ...]] = []

    def take(self) -> list[tuple[Any, ...]]:
        taken, self.messages = self.messages, []
        return taken


class _Process:
    pid = 1

    def is_alive(self) -> bool:
        return True


def test_a_jobs_loading_has_the_load_timeout_not_the_hang_timeout() -> None:
    from anyi2v.daemon.supervisor import Supervisor

    supervisor = Supervisor(WorkerConfig(), hang_timeout=10.0, load_timeout=100.0)
    pipe = _Pipe()
    supervisor._pipe, supervisor._process = pipe, _Process()  # type: ignore[assignment]
    supervisor.state = "ready"
    supervisor.job_id = "j"
    pipe.messages = [("progress", "j", "loading", 0, 2)]
    supervisor.receive()
    start = supervisor.last_activity
    assert supervisor.overdue(start + 50.0) is None  # past the hang timeout, within the load timeout
    assert supervisor.overdue(start + 101.0) == "job_load"
    pipe.messages = [("progress", "j", "loading", 2, 2), ("loaded", {"checkpoint": "a"})]
    supervisor.receive()
    assert supervisor.loaded == {"checkpoint": "a"}
    assert supervisor.overdue(supervisor.last_activity + 11.0) == "hung"  # loaded: the hang timeout again


def test_held_and_default_models_keep_their_library_names() -> None:
    from anyi2v.daemon.model_index import default_combination
    from anyi2v.daemon.pipeline.model_choice import sources_names

    names = sources_names(
        ModelSources(
            checkpoint=Chosen("checkpoints/realisticVision_v51", "--model"),
            loras=(Chosen("/home/me/loras/detail.safetensors", "--lora", paths_allowed=True, weight=0.5),),
        )
    )
    assert names["checkpoint"] == "checkpoints/realisticVision_v51"  # a library name stays whole
    assert names["loras"] == [{"name": "detail.safetensors", "weight": 0.5}]  # a path: its file name only
    config = WorkerConfig(model="checkpoints/dreamshaper_8", loras=(("loras/a", 0.3),), scheduler="euler")
    default = default_combination(config)
    assert (default.checkpoint, default.scheduler) == ("checkpoints/dreamshaper_8", "euler")
    assert [(lora.name, lora.weight) for lora in default.loras] == [("loras/a", 0.3)]


def test_the_daemons_scheduler_runs_the_shots_that_name_none(tmp_path: Path) -> None:
    """``anyi2v serve --scheduler euler``: a shot without a sampler runs on Euler, as one naming euler does;
    one naming ddim still runs on DDIM (the shot's word wins)."""
    import numpy as np
    from PIL import Image

    def frames(client: DaemonClient, job_id: str, shot: dict[str, Any]) -> np.ndarray:
        ended, events = run(client, job_id, shot)
        assert ended == "done", events[-1].content
        folder = tmp_path / job_id
        manifest = client.fetch_result(job_id, folder)
        paths = [folder / "frames" / f"{index:04d}.png" for index in range(manifest["n_frames"])]
        return np.stack([np.asarray(Image.open(path)) for path in paths])

    def naming(scheduler: str | None) -> dict[str, Any]:
        shot = shot_document(frames=4, steps=3)
        if scheduler is not None:
            shot["schema_version"] = 4
            shot["model"] = {"scheduler": scheduler}
        return shot

    worker = WorkerConfig(model="tiny-random", device="cpu", scheduler="euler")
    with running_server(tmp_path / "data", worker=worker) as server, DaemonClient(server.address) as client:
        wait_ready(client)
        unnamed = frames(client, "unnamed", naming(None))
        euler = frames(client, "euler", naming("euler"))
        ddim = frames(client, "ddim", naming("ddim"))
    np.testing.assert_array_equal(unnamed, euler)
    assert np.abs(unnamed.astype(int) - ddim.astype(int)).max() > 0, "the daemon's scheduler was not used"
