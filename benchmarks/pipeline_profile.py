"""Where an AnyI2V run's GPU time goes: one optimization pass broken into its parts, and the inversion's
inversion, eager and replayed from a CUDA graph.

    python benchmarks/pipeline_profile.py [--size 512] [--frames 16] [--table]

Prints milliseconds per part (CUDA-synchronized, median of several runs) on the SD 1.5 + AnimateDiff
sized random models in fp16. ``--table`` adds torch.profiler's top kernels for one optimization pass.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from anyi2v.daemon.pipeline.controls import (
    ControlLayers,
    ControlState,
    Injection,
    Optimize,
    StopForward,
    install_controls,
)
from anyi2v.daemon.pipeline.features import low_rank_pca
from anyi2v.daemon.pipeline.generate import encode_prompt, optimized_layers
from anyi2v.daemon.pipeline.inversion import invert
from anyi2v.daemon.pipeline.models import random_models
from anyi2v.daemon.pipeline.trajectory import feature_grid, grid_size, track_boxes, trajectory_loss
from benchmarks.pipeline_speed import condition_image, make_shot


def timed(work: Callable[[], object], repeats: int = 5) -> float:
    """Median milliseconds of ``work`` over ``repeats`` runs after one warm-up."""
    work()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def compare_pca_solvers(captured, frames, size, tracks, method, figures) -> None:  # type: ignore[no-untyped-def]
    """Time both PCA solvers and compare the loss and its gradient under each."""

    def loss_and_grad(solver: str) -> tuple[float, list[torch.Tensor]]:
        leaves = [c.detach().requires_grad_(True) for c in captured]
        loss = trajectory_loss(feature_grid(leaves, frames, size, 64, solver), tracks, method)
        return float(loss.detach()), list(torch.autograd.grad(loss, leaves))

    exact_loss, exact_grads = loss_and_grad("exact")
    for solver in ("exact", "randomized"):
        for index, features in enumerate(c.detach().float() for c in captured):
            figures[f"PCA layer {index} ({features.shape[-1]} channels), {solver}"] = timed(
                lambda f=features, s=solver: low_rank_pca(f, 64, s)
            )
    loss, grads = loss_and_grad("randomized")
    cosines = [
        round(float(torch.nn.functional.cosine_similarity(a.flatten().float(), b.flatten().float(), dim=0)), 6)
        for a, b in zip(grads, exact_grads, strict=True)
    ]
    print(
        f"randomized PCA: loss {loss:.6g} vs exact {exact_loss:.6g} (relative"
        f" {abs(loss - exact_loss) / abs(exact_loss):.2e}); gradient cosine to exact, per layer {cosines}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--table", action="store_true")
    arguments = parser.parse_args()
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}", flush=True)
    models = random_models("sd15", seed=0, tokenizer_dir=Path(tempfile.mkdtemp())).to(device, torch.float16)
    shot = make_shot(arguments.size, arguments.frames, 25)
    method = shot.method
    frames = shot.output.n_frames
    embeds = encode_prompt(models, shot.prompt)
    bank = invert(models, condition_image(arguments.size), embeds, method)
    unet = models.unet
    side = arguments.size // 8
    generator = torch.Generator(device).manual_seed(0)
    latent = torch.randn((1, 4, frames, side, side), device=device, generator=generator)
    t = torch.tensor(900, device=device)
    cond_frames = embeds.repeat_interleave(frames, dim=0)
    both = torch.cat([embeds, embeds]).repeat_interleave(frames, dim=0)

    captured_paths = optimized_layers(method)
    layers = ControlLayers(tuple(method.query_layers), tuple(method.residual_layers), captured_paths)
    state = ControlState()
    tracks = track_boxes(shot)
    size = grid_size(shot)

    def arm() -> None:
        state.set(Optimize(0, capture=frozenset(captured_paths), injection=Injection(frames)))

    figures: dict[str, float] = {}
    with install_controls(unet, layers, state, bank):
        with torch.no_grad():
            figures["sampling step (2 x frames, no grad, full UNet)"] = timed(
                lambda: unet(torch.cat([latent, latent]).half(), t, encoder_hidden_states=both)
            )

        def forward(grad: bool) -> list[torch.Tensor]:
            arm()
            leaf = latent.clone().requires_grad_(grad)
            with torch.set_grad_enabled(grad), contextlib.suppress(StopForward):
                unet(leaf.half(), t, encoder_hidden_states=cond_frames)
            captured = [state.captured[p] for p in captured_paths]
            state.idle()
            return captured

        figures["optimization forward, no grad"] = timed(lambda: forward(False))
        figures["optimization forward, with grad"] = timed(lambda: forward(True))
        detached = [c.detach().requires_grad_(True) for c in forward(True)]
        figures["feature grid (PCA + resize)"] = timed(lambda: feature_grid(detached, frames, size, 64))
        grids = [g.detach().requires_grad_(True) for g in feature_grid(detached, frames, size, 64)]
        figures["trajectory loss forward"] = timed(lambda: trajectory_loss(grids, tracks, method))
        figures["trajectory loss forward + backward"] = timed(lambda: trajectory_loss(grids, tracks, method).backward())

        def whole_pass() -> None:
            captured = forward(True)
            loss = trajectory_loss(feature_grid(captured, frames, size, 64), tracks, method)
            loss.backward()

        figures["whole pass (forward, grid, loss, backward)"] = timed(whole_pass)
        compare_pca_solvers(detached, frames, size, tracks, method, figures)
        from torch.nn.attention import SDPBackend, sdpa_kernel

        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION):
            with sdpa_kernel([backend]):
                figures[f"whole pass, attention by {backend.name}"] = timed(whole_pass)
                with torch.no_grad():
                    figures[f"sampling step, attention by {backend.name}"] = timed(
                        lambda: unet(torch.cat([latent, latent]).half(), t, encoder_hidden_states=both)
                    )
        if arguments.table:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                whole_pass()
                torch.cuda.synchronize()
            print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25), flush=True)
            kernels = sum(e.count for e in prof.key_averages() if e.device_type.name == "CUDA")
            print(f"CUDA kernels in one pass: {kernels}", flush=True)

    image = condition_image(arguments.size)
    for graphed in (False, True):
        name = "inversion, CUDA graph" if graphed else "inversion, eager"
        figures[name] = timed(lambda g=graphed: invert(models, image, embeds, method, cuda_graph=g), repeats=2)
    eager, replayed = (invert(models, image, embeds, method, cuda_graph=g) for g in (False, True))
    worst = max(
        float((a.float() - b.float()).abs().max())
        for a, b in zip(
            [*eager.queries.values(), *eager.residuals.values()],
            [*replayed.queries.values(), *replayed.residuals.values()],
            strict=True,
        )
    )
    print(f"inversion features, CUDA graph vs eager: max |difference| {worst:.3g}", flush=True)

    for name, value in figures.items():
        print(f"{value:9.1f} ms  {name}", flush=True)


if __name__ == "__main__":
    main()
