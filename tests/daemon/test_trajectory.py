"""The trajectory loss and its parts against direct, frame-by-frame definitions."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as functional

from anyi2v.daemon.pipeline.features import (
    bicubic_resize,
    low_rank_pca,
    point_similarity,
    semantic_mask,
    top_eigenvectors,
    two_means_foreground,
)
from anyi2v.daemon.pipeline.trajectory import TrackBoxes, trajectory_loss
from anyi2v.shared.settings import MethodSettings

FRAMES, SIDE = 5, 24


def reference_loss(grids: list[torch.Tensor], tracks: list[TrackBoxes], settings: MethodSettings) -> torch.Tensor:
    """The loss as the method states it, one frame at a time (points given per track here, boxes inside
    the frame): the masks of all layers split by one 2-means per frame, each layer's sum over frames
    divided by its weights' sum over all frames."""
    total = torch.zeros(())
    for track in tracks:
        x0, y0, x1, y1 = track.boxes[0]  # type: ignore[misc]
        references = [grid[0, :, y0:y1, x0:x1].detach() for grid in grids]
        use_mask = settings.mask != "none" and not track.anchor
        points = [torch.stack([grid[0, :, y, x] for x, y in track.points]).detach() for grid in grids]

        def masks(maps: list[torch.Tensor], points: list[torch.Tensor] = points) -> list[torch.Tensor]:
            similarities = [point_similarity(p, m) for p, m in zip(points, maps, strict=True)]
            pooled = two_means_foreground(torch.cat([s.flatten() for s in similarities])).float()
            sizes = [s.numel() for s in similarities]
            return [m.reshape(s.shape) for m, s in zip(pooled.split(sizes), similarities, strict=True)]

        first_masks = masks(references)
        for layer, grid in enumerate(grids):
            error_sum, weight_sum = torch.zeros(()), torch.zeros(())
            for frame in range(1, grid.shape[0]):
                box = track.boxes[frame]
                if box is None:
                    continue
                bx0, by0, bx1, by1 = box
                current = grid[frame, :, by0:by1, bx0:bx1]
                size = current.shape[-2:]
                target = functional.interpolate(references[layer][None], size=size, mode="bicubic", align_corners=False)
                weight = torch.ones(size)
                if use_mask:
                    resized = functional.interpolate(first_masks[layer][None, None], size=size, mode="nearest")[0, 0]
                    if settings.mask == "dynamic":
                        frame_mask = masks([g[frame, :, by0:by1, bx0:bx1].detach() for g in grids])[layer]
                    else:
                        frame_mask = resized
                    weight = weight * resized * frame_mask
                if settings.gaussian_weighting:  # 1 at the centre, sigma 0.2 of each side (SG-I2V)
                    ys = torch.arange(size[0]) - (size[0] - 1) / 2
                    xs = torch.arange(size[1]) - (size[1] - 1) / 2
                    sigma_y, sigma_x = max(0.2 * size[0], 0.5), max(0.2 * size[1], 0.5)
                    exponent = -(ys[:, None] ** 2) / (2 * sigma_y**2) - xs[None, :] ** 2 / (2 * sigma_x**2)
                    weight = weight * torch.exp(exponent)
                error = ((target[0] - current) ** 2).mean(0)
                error_sum = error_sum + (error * weight).sum()
                weight_sum = weight_sum + weight.sum()
            total = total + error_sum / weight_sum.clamp_min(1.0)
    return total


def moving_tracks() -> list[TrackBoxes]:
    return [
        # grows from 6x6 to 9x8, leaves the frame at the end
        TrackBoxes("grow", ((2, 2, 8, 8), (3, 2, 9, 8), (4, 3, 11, 10), (5, 3, 13, 12), None), ((4, 5), (6, 3)), False),
        # constant size: one group
        TrackBoxes("slide", tuple((10 + f, 12, 18 + f, 20) for f in range(FRAMES)), ((13, 15),), False),
        TrackBoxes("sky", tuple((0, 0, 24, 4) for _ in range(FRAMES)), ((3, 1),), True),
    ]


@pytest.mark.parametrize(
    "method",
    [
        {},
        {"mask": "static"},
        {"mask": "none"},
        {"gaussian_weighting": True},
        {"mask": "static", "gaussian_weighting": True},
    ],
)
def test_the_batched_loss_equals_the_frame_by_frame_definition(method: dict[str, Any]) -> None:
    generator = torch.Generator().manual_seed(3)
    grids = [torch.randn(FRAMES, k, SIDE, SIDE, generator=generator, requires_grad=True) for k in (6, 4)]
    settings = MethodSettings(**method)
    tracks = moving_tracks()
    loss = trajectory_loss(grids, tracks, settings)
    expected = reference_loss(grids, tracks, settings)
    torch.testing.assert_close(loss, expected)
    grads = torch.autograd.grad(loss, grids)
    expected_grads = torch.autograd.grad(expected, grids)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad)
        assert float(grad[0].abs().sum()) == 0.0  # frame 0 is the target: no gradient through it
        assert float(grad[1:].abs().sum()) > 0.0


def test_dynamic_masks_differ_from_static_ones_when_the_object_moves_inside_its_box() -> None:
    grid = torch.zeros(2, 3, 16, 16)
    grid[:, 2] = 0.1  # background
    grid[0, 0, 2:5, 2:5] = 1.0  # the object in frame 0: top-left of the box
    grid[1, 0, 6:9, 6:9] = 1.0  # in frame 1 it has moved to the box's bottom-right
    grid[1, 1] = torch.linspace(0, 1, 16)  # something that differs from frame 0 everywhere
    track = TrackBoxes("ball", ((1, 1, 9, 9), (1, 1, 9, 9)), ((3, 3),), False)
    point = grid[0, :, 3, 3][None]
    static = semantic_mask(point, grid[0, :, 1:9, 1:9])
    dynamic = semantic_mask(point, grid[1, :, 1:9, 1:9])
    assert static.shape == dynamic.shape == (8, 8)
    assert bool(static[1:4, 1:4].all())
    assert bool(dynamic[5:8, 5:8].all())
    assert not torch.equal(static, dynamic)
    losses = {
        mask: float(trajectory_loss([grid], [track], MethodSettings(mask=mask))) for mask in ("dynamic", "static")
    }
    assert losses["dynamic"] != pytest.approx(losses["static"])


def test_tracks_without_points_pick_their_own_inside_the_box() -> None:
    generator = torch.Generator().manual_seed(5)
    grid = torch.randn(3, 4, 12, 12, generator=generator)
    grid[:, 0, 3:7, 3:7] += 4.0  # a distinct object filling part of the box
    boxes = ((2, 2, 9, 9), (3, 2, 10, 9), (4, 2, 11, 9))
    loss = trajectory_loss([grid], [TrackBoxes("auto", boxes, (), False)], MethodSettings())
    assert torch.isfinite(loss)
    assert float(loss) > 0.0


def test_bicubic_resize_equals_torch_interpolate() -> None:
    generator = torch.Generator().manual_seed(1)
    maps = torch.randn(3, 5, 7, 9, generator=generator)
    for size in ((28, 36), (4, 5), (7, 9), (13, 2)):
        expected = functional.interpolate(maps, size=size, mode="bicubic", align_corners=False)
        torch.testing.assert_close(bicubic_resize(maps, size), expected, atol=1e-5, rtol=1e-5)


def test_batched_two_means_splits_each_map_on_its_own() -> None:
    generator = torch.Generator().manual_seed(2)
    values = torch.rand(4, 6, 7, generator=generator)
    values[1] = 0.5  # a constant map: all foreground
    values[2, :3] += 3.0
    batched = two_means_foreground(values, start_dim=1)
    for index in range(4):
        assert torch.equal(batched[index], two_means_foreground(values[index]))
    assert bool(batched[1].all())
    assert bool(batched[2, :3].all())
    assert not bool(batched[2, 3:].any())


def test_two_means_ignores_values_outside_the_valid_region() -> None:
    values = torch.zeros(3, 4, 4)
    values[:, :2] = 1.0
    values[0, :, 3] = 50.0  # an outlier column, outside the valid region
    valid = torch.zeros(3, 4, 4, dtype=torch.bool)
    valid[0, :, :3] = True
    valid[1] = True  # problem 2 has no valid value at all
    split = two_means_foreground(values, start_dim=1, valid=valid)
    assert torch.equal(split[0, :2, :3], torch.ones(2, 3, dtype=torch.bool))
    assert not bool(split[0, 2:].any())
    assert not bool(split[0, :, 3].any())
    assert torch.equal(split[1], two_means_foreground(values[1]))
    assert not bool(split[2].any())


def test_the_randomized_pca_finds_the_exact_principal_subspace() -> None:
    generator = torch.Generator().manual_seed(4)
    channels, components = 320, 16
    rotation, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
    spectrum = 0.98 ** torch.arange(channels, dtype=torch.float32)  # a decaying spectrum, as features have
    tokens = torch.randn(2000, channels, generator=generator) * spectrum.sqrt() @ rotation.T
    covariance = torch.cov(tokens.T)
    exact = top_eigenvectors(covariance, components, "exact")
    randomized = top_eigenvectors(covariance, components, "randomized")
    assert randomized.shape == exact.shape == (channels, components)
    torch.testing.assert_close(randomized.T @ randomized, torch.eye(components), atol=1e-4, rtol=0)
    overlap = float((exact.T @ randomized).pow(2).sum()) / components  # 1 when the subspaces agree
    assert overlap > 1 - 1e-5
    assert torch.equal(randomized, top_eigenvectors(covariance, components, "randomized"))  # seeded: repeats
    projected = low_rank_pca(tokens[None], components, "randomized")
    variances = projected[0].var(0)
    assert bool((variances[:-1] >= variances[1:]).all())  # strongest first
    with pytest.raises(ValueError, match="unknown PCA solver"):
        top_eigenvectors(covariance, components, "magic")
