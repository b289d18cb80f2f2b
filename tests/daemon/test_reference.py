# ruff: noqa: N806 (the papers' symbols: F_inv, R, Q, K, V, X, F, H, W)
"""The fast batched paths equal the method as its equations (``daemon/pipeline/reference.py``) on seeded
random inputs, and the PCA and the 2-means equal scikit-learn's ``PCA`` and ``KMeans`` on the same
features (scikit-learn is a test dependency only)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as functional
from diffusers.models.attention_processor import Attention
from sklearn.cluster import KMeans  # type: ignore[import-untyped]
from sklearn.decomposition import PCA  # type: ignore[import-untyped]
from torch import nn

from anyi2v.daemon.pipeline import reference
from anyi2v.daemon.pipeline.controls import (
    ControlLayers,
    ControlledSelfAttention,
    ControlMode,
    ControlState,
    FeatureBank,
    Idle,
    Injection,
    Optimize,
    Record,
    Sample,
    install_controls,
)
from anyi2v.daemon.pipeline.features import (
    butterworth_lowpass,
    gaussian_profile,
    lloyd_two_means,
    low_rank_pca,
    mix_frequencies,
    patch_adain,
    point_similarity,
    pooled_semantic_masks,
    semantic_mask,
    top_eigenvectors,
    two_means_foreground,
)
from anyi2v.daemon.pipeline.trajectory import feature_grid, track_boxes, trajectory_loss
from anyi2v.shared.document import parse_shot
from anyi2v.shared.settings import MethodSettings
from anyi2v.shared.tracks import sample_track


def close64(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal to float64 precision: both sides computed in float64."""
    torch.testing.assert_close(actual, expected, rtol=1e-10, atol=1e-12)


def close32(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal to float32 precision: a float32 fast path against a float64 (or float32) reference."""
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def same_up_to_sign(fast: torch.Tensor, slow: torch.Tensor, dim: int, atol: float) -> None:
    """fast and slow agree within ``atol`` once each slice along ``dim`` (a principal axis) has slow's sign."""
    moved_fast, moved_slow = fast.movedim(dim, 0).flatten(1), slow.movedim(dim, 0).flatten(1)
    signs = torch.sign((moved_fast * moved_slow).sum(1, keepdim=True))
    torch.testing.assert_close((moved_fast * signs).to(slow.dtype), moved_slow, rtol=0, atol=atol)


def spectrum_features(shape: tuple[int, ...], decay: float, seed: int) -> torch.Tensor:
    """(..., C) random features with a clear spectrum: variances decay**i along random orthogonal axes."""
    g = generator(seed)
    channels = shape[-1]
    rotation, _ = torch.linalg.qr(torch.randn(channels, channels, generator=g, dtype=torch.float64))
    scales = (decay ** torch.arange(channels, dtype=torch.float64)).sqrt()
    features: torch.Tensor = (torch.randn(*shape, generator=g, dtype=torch.float64) * scales) @ rotation.T + 0.5
    return features


# Injection: patch AdaIN, residual, query, K/V.


@pytest.mark.parametrize(("shape", "patch"), [((3, 8, 12), 4), ((2, 16, 16), 4), ((4, 6, 10), 4), ((1, 5, 7), 3)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_patch_adain_equals_the_reference(shape: tuple[int, int, int], patch: int, dtype: torch.dtype) -> None:
    g = generator(sum(shape))
    F_inv = (torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 1).to(dtype)
    F_cur = (torch.randn(shape, generator=g, dtype=torch.float64) * 0.5 - 2).to(dtype)
    fast, expected = patch_adain(F_inv, F_cur, patch), reference.patch_adain_reference(F_inv, F_cur, patch)
    if dtype == torch.float64:
        close64(fast, expected)
    else:  # statistics of values near -2 with a spread of 0.5: float32 keeps about 1e-5 of them
        torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-5)


class Block(nn.Module):
    """The part of a ResNet block the residual hook sees: ``conv2``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.conv2(x)
        return out


@pytest.mark.parametrize(
    ("batch", "frames", "conditional_index", "patch", "adain"),
    [(2, 3, 1, 4, True), (1, 4, 0, 4, True), (2, 2, 0, 2, True), (2, 3, 1, 4, False), (3, 2, 2, 3, True)],
)
def test_residual_injection_equals_the_reference(
    batch: int, frames: int, conditional_index: int, patch: int, adain: bool
) -> None:
    torch.manual_seed(batch * 10 + frames)
    block = Block(5).double()
    model = nn.Sequential()
    model.add_module("block", block)
    x = torch.randn(batch * frames, 5, 8, 12, dtype=torch.float64)
    R_inv = torch.randn(5, 8, 12, dtype=torch.float64) * 2 + 1
    bank = FeatureBank(residuals={"block": R_inv[None]})
    injection = Injection(frames, conditional_index, residual_adain=adain, adain_patch=patch)
    state = ControlState()
    with torch.no_grad():
        R = block.conv2(x)  # no hooks yet
        with install_controls(model, ControlLayers((), ("block",)), state, bank):
            injecting: tuple[ControlMode, ...] = (Sample(0, injection), Optimize(0, frozenset(), injection))
            for mode in injecting:
                state.set(mode)
                close64(
                    block(x), reference.inject_residual_reference(R, R_inv, frames, conditional_index, patch, adain)
                )
            no_residual = Injection(frames, conditional_index, residual=False)
            idle: tuple[ControlMode, ...] = (
                Idle(),
                Sample(0, None),
                Sample(0, no_residual),
                Optimize(0, frozenset()),
                Record(),
            )
            for mode in idle:
                state.set(mode)
                assert torch.equal(block(x), R)
    assert torch.equal(bank.residuals["block"][0], R[0])  # Record kept frame 0 of item 0


def attention_module(seed: int) -> Attention:
    torch.manual_seed(seed)
    return Attention(query_dim=16, heads=2, dim_head=8).double().eval()


@pytest.mark.parametrize("halves", ["conditional", "both"])
@pytest.mark.parametrize(
    ("batch", "frames", "conditional_index", "query", "kv_copy"),
    [
        (2, 3, 1, True, True),
        (1, 4, 0, True, True),
        (2, 3, 1, False, True),
        (2, 2, 1, True, False),
        (3, 2, 0, True, True),
    ],
)
def test_query_injection_and_kv_copy_equal_the_reference(
    batch: int, frames: int, conditional_index: int, query: bool, kv_copy: bool, halves: str
) -> None:
    attn = attention_module(batch + frames)
    tokens = 6
    hidden = torch.randn(batch * frames, tokens, 16, generator=generator(frames), dtype=torch.float64)
    Q_inv = torch.randn(tokens, attn.inner_dim, generator=generator(7), dtype=torch.float64)
    bank = FeatureBank(queries={"a": Q_inv[None]})
    state = ControlState()
    processor = ControlledSelfAttention("a", state, bank, inject_query=True, controlled_kv=True)
    injection = Injection(frames, conditional_index, query=query, kv_copy=kv_copy, kv_copy_halves=halves)
    with torch.no_grad():
        Q, K, V = attn.to_q(hidden), attn.to_k(hidden), attn.to_v(hidden)
        if query:
            Q = reference.inject_query_reference(Q, Q_inv, frames, conditional_index)
        if kv_copy:
            K, V = reference.copy_kv_reference(K, V, frames, conditional_index, halves)
        expected = attn.to_out[0](reference.self_attention_reference(Q, K, V, attn.heads))
        injecting: tuple[ControlMode, ...] = (Sample(0, injection), Optimize(0, frozenset({"a", "later"}), injection))
        for mode in injecting:
            state.set(mode)
            close64(processor(attn, hidden), expected)
        assert torch.equal(state.captured["a"], Q)  # the optimization keeps the (injected) query
        own = reference.self_attention_reference(attn.to_q(hidden), attn.to_k(hidden), attn.to_v(hidden), attn.heads)
        plain = attn.to_out[0](own)  # recording changes nothing
        state.set(Record())
        close64(processor(attn, hidden), plain)
        assert torch.equal(bank.queries["a"][0], attn.to_q(hidden)[0])


# Features: PCA and the feature grid.


@pytest.mark.parametrize(("shape", "components"), [((3, 20, 6), 3), ((2, 64, 12), 5), ((4, 9, 5), 64), ((1, 40, 8), 8)])
def test_exact_pca_equals_the_reference(shape: tuple[int, int, int], components: int) -> None:
    X = spectrum_features(shape, decay=0.6, seed=shape[1])
    F, _ = reference.pca_reference(X, components)
    fast = low_rank_pca(X.float(), components, "exact")
    assert fast.shape == F.shape == (*shape[:2], min(components, shape[2]))
    same_up_to_sign(fast, F, dim=-1, atol=1e-5)


@pytest.mark.parametrize("components", [4, None])
@pytest.mark.parametrize(("hw", "size"), [((4, 4), (16, 16)), ((4, 6), (10, 15)), ((8, 5), (8, 5))])
def test_feature_grid_equals_the_reference(hw: tuple[int, int], size: tuple[int, int], components: int | None) -> None:
    frames, channels = 3, 7
    X = spectrum_features((frames, hw[0] * hw[1], channels), decay=0.5, seed=hw[1])
    residual = X.transpose(1, 2).reshape(frames, channels, *hw)  # the same features as a residual state
    expected = reference.feature_map_reference(X, components, hw, size)
    for captured in (X.float(), residual.float()):
        (grid,) = feature_grid([captured], frames, size, components, "exact")
        assert grid.shape == expected.shape
        same_up_to_sign(grid, expected, dim=1, atol=1e-5)


# Semantic masks.


def object_features(seed: int, channels: int = 6, height: int = 9, width: int = 11) -> torch.Tensor:
    """(C, h, w) noise with an object: a blob of pixels sharing a feature direction."""
    g = generator(seed)
    features = torch.randn(channels, height, width, generator=g, dtype=torch.float64)
    y0, x0 = int(torch.randint(0, height - 3, (1,), generator=g)), int(torch.randint(0, width - 3, (1,), generator=g))
    direction = torch.randn(channels, 1, 1, generator=g, dtype=torch.float64)
    features[:, y0 : y0 + 4, x0 : x0 + 4] += 3 * direction
    return features


@pytest.mark.parametrize("seed", range(6))
def test_two_means_and_semantic_mask_equal_the_reference(seed: int) -> None:
    F_B = object_features(seed)
    F_P = torch.stack([F_B[:, 4, 5], F_B[:, 0, 0]]) if seed % 2 else torch.randn(3, 6, generator=generator(seed))
    mask = semantic_mask(F_P, F_B)
    expected = reference.semantic_mask_reference(F_P, F_B)
    assert torch.equal(mask, expected)
    values = torch.rand(5, 40, generator=generator(seed), dtype=torch.float64)
    values[seed % 5, :10] += 2.0
    low, high = lloyd_two_means(values.float(), start_dim=1)
    for index in range(5):
        c_low, c_high = reference.two_means_reference(values[index].tolist())
        assert float(low[index]) == pytest.approx(c_low, rel=1e-6, abs=1e-7)
        assert float(high[index]) == pytest.approx(c_high, rel=1e-6, abs=1e-7)
    assert bool(semantic_mask(F_P, torch.ones(6, 3, 4)).all())  # constant similarity: all foreground
    assert bool(reference.semantic_mask_reference(F_P, torch.ones(6, 3, 4)).all())


@pytest.mark.parametrize("seed", range(4))
def test_pooled_semantic_masks_equal_the_reference(seed: int) -> None:
    layers = [object_features(seed, channels=6), object_features(seed + 10, channels=4)]
    F_P = [torch.stack([F_B[:, 4, 5], F_B[:, 1, 2]]) for F_B in layers]
    frames = torch.stack([reference.similarity_reference(P, B) for P, B in zip(F_P, layers, strict=True)])
    valid = torch.ones(1, *frames.shape[-2:], dtype=torch.bool)
    fast = pooled_semantic_masks(frames[:, None].float(), valid)[:, 0]
    expected = reference.pooled_semantic_masks_reference(list(frames))
    for mask, wanted in zip(fast, expected, strict=True):
        assert torch.equal(mask, wanted)
    close32(point_similarity(F_P[0], layers[0]).double(), frames[0])


# The trajectory loss.


def moving(name: str, first: list[float], last: list[float], frames: int, **extra: Any) -> dict[str, Any]:
    keyframes = [{"frame": 0, "box": first}, {"frame": frames - 1, "box": last}]
    return {"id": name, "keyframes": keyframes, **extra}


def loss_shot(frames: int, width: int, height: int) -> Any:
    document: dict[str, Any] = {
        "schema_version": 3,
        "prompt": "boxes",
        "output": {"width": width, "height": height, "n_frames": frames},
        "conditions": [{"source": {"kind": "image", "path": "c.png"}, "modality": "depth"}],
        "tracks": [
            moving("edge", [-0.2, 0.5, 0.3, 1.1], [0.6, -0.1, 1.3, 0.3], frames, query_points=[[0.05, 0.7], [0.2, 0.9]]),  # noqa: E501
            moving("leaves", [0.4, 0.35, 0.65, 0.6], [1.05, 0.3, 1.4, 0.45], frames),  # partly, then wholly out
            moving("grows", [0.2, 0.2, 0.35, 0.4], [0.1, 0.3, 0.7, 0.95], frames, query_points=[[0.3, 0.3]]),
            moving("sky", [0.0, -0.1, 1.0, 0.2], [0.1, -0.1, 1.1, 0.2], frames, role="anchor"),
        ],
    }  # fmt: skip
    return parse_shot(document, source="test", max_frames=32)


@pytest.mark.parametrize(("frames", "width", "height"), [(5, 96, 96), (4, 112, 80), (2, 64, 128)])
def test_grid_boxes_and_points_equal_the_reference(frames: int, width: int, height: int) -> None:
    shot = loss_shot(frames, width, height)
    H, W = height // 4, width // 4
    tracks = track_boxes(shot)
    assert any(box is None for on_grid in tracks for box in on_grid.boxes)  # "leaves" leaves the frame
    for on_grid, spec in zip(tracks, shot.tracks, strict=True):
        expected = tuple(reference.grid_box_reference(box, H, W) for box in sample_track(spec, frames))
        assert on_grid.boxes == expected
        first = on_grid.boxes[0]
        assert first is not None
        assert on_grid.points == tuple(reference.grid_point_reference(p, first, H, W) for p in spec.query_points)
        assert on_grid.anchor == (spec.role == "anchor")


SETTINGS = [
    {},
    {"mask": "static"},
    {"mask": "none"},
    {"gaussian_weighting": True},
    {"mask": "static", "gaussian_weighting": True},
]


@pytest.mark.parametrize("method", SETTINGS, ids=lambda m: ",".join(f"{k}={v}" for k, v in m.items()) or "default")
@pytest.mark.parametrize(("frames", "width", "height"), [(5, 96, 96), (4, 112, 80), (2, 64, 128)])
def test_trajectory_loss_equals_the_reference(method: dict[str, Any], frames: int, width: int, height: int) -> None:
    shot = loss_shot(frames, width, height)
    tracks = track_boxes(shot)
    H, W = height // 4, width // 4
    g = generator(frames * width + height)
    grids = [torch.randn(frames, k, H, W, generator=g, requires_grad=True) for k in (6, 4)]
    for grid in grids:  # an object to find in each box, so the masks are not noise
        with torch.no_grad():
            for on_grid in tracks:
                for whole in on_grid.boxes:
                    box = reference.visible_reference(whole, H, W) if whole is not None else None
                    if box is not None:
                        x0, y0, x1, y1 = box
                        grid[:, 0, y0 + (y1 - y0) // 3 : y1 - (y1 - y0) // 3, x0 : x1 - (x1 - x0) // 3] += 2.5
    settings = MethodSettings(**method)
    loss = trajectory_loss(grids, tracks, settings)
    expected = reference.trajectory_loss_reference(grids, tracks, settings.mask, settings.gaussian_weighting)
    close32(loss, expected)
    for grad, expected_grad in zip(torch.autograd.grad(loss, grids), torch.autograd.grad(expected, grids), strict=True):
        close32(grad, expected_grad)
        assert float(grad[0].abs().sum()) == 0.0  # SG: frame 1 is the target, never moved


@pytest.mark.parametrize(("height", "width"), [(1, 1), (2, 5), (6, 6), (9, 4), (17, 12)])
def test_gaussian_box_weight_equals_the_reference(height: int, width: int) -> None:
    fast = gaussian_profile(height, torch.device("cpu"))[:, None] * gaussian_profile(width, torch.device("cpu"))[None]
    close32(fast, reference.gaussian_weight_reference(height, width))


# High-frequency preserved post-processing.


@pytest.mark.parametrize(
    ("shape", "cutoff", "order"), [((2, 4, 8, 8), 0.5, 4), ((3, 2, 9, 12), 0.25, 1), ((1, 1, 7, 5), 1.0, 2)]
)
def test_butterworth_mix_equals_the_reference(shape: tuple[int, ...], cutoff: float, order: int) -> None:
    g = generator(shape[2])
    z_star, z = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(2))
    lowpass = butterworth_lowpass(shape[2], shape[3], cutoff, order, torch.device("cpu"))
    close32(lowpass, reference.butterworth_lowpass_reference(shape[2], shape[3], cutoff, order))
    mixed = mix_frequencies(z_star, z, cutoff, order)
    close32(mixed, reference.mix_frequencies_reference(z_star, z, cutoff, order))
    assert mixed.dtype == z_star.dtype


# PCA and 2-means against scikit-learn.


@pytest.mark.parametrize(
    ("solver", "channels", "components"),
    [("exact", 24, 6), ("exact", 12, 12), ("exact", 64, 16), ("randomized", 320, 16)],
)
def test_pca_agrees_with_scikit_learn(solver: str, channels: int, components: int) -> None:
    features = spectrum_features((2, 600, channels), decay=0.8, seed=channels).float()
    data = features.reshape(-1, channels)
    if solver == "randomized":
        assert 2 * (components + 128) < channels  # the randomized solver really runs
    pca = PCA(n_components=components, svd_solver="full").fit(data.double().numpy())
    covariance = torch.cov(data.T)
    basis = top_eigenvectors(covariance, components, solver)
    axes = torch.from_numpy(pca.components_.T.copy())
    same_up_to_sign(basis, axes, dim=1, atol=1e-5)
    projected = low_rank_pca(features, components, solver).reshape(-1, components)
    variance = projected.double().var(0)
    np.testing.assert_allclose(variance.numpy(), pca.explained_variance_, rtol=1e-5)
    same_up_to_sign(projected, torch.from_numpy(pca.transform(data.double().numpy())), dim=1, atol=5e-5)


@pytest.mark.parametrize("seed", range(5))
def test_two_means_agrees_with_scikit_learn_kmeans(seed: int) -> None:
    """On the similarity values of a semantic mask (salient points on an object, a clear gap to the
    background), the 2-means finds the clusters scikit-learn's KMeans finds. (With 32 channels instead
    of 64, two seeds in eight leave one background value nearer the object's centre than the
    background's: Lloyd's algorithm from the extremes then keeps it, a local optimum, where KMeans'
    restarts find the global one; the next test pins that behaviour down.)"""
    g = generator(seed)
    features = torch.randn(64, 16, 16, generator=g, dtype=torch.float64)
    y0, x0 = (int(v) for v in torch.randint(0, 10, (2,), generator=g))
    features[:, y0 : y0 + 6, x0 : x0 + 6] += 3 * torch.randn(64, 1, 1, generator=g, dtype=torch.float64)
    points = torch.stack([features[:, y0 + 1, x0 + 2], features[:, y0 + 4, x0 + 3]])  # clicks on the object
    unit = functional.normalize(features.flatten(1).T, dim=1)
    similarity = (unit @ functional.normalize(points, dim=1).T).amax(1).float()  # (256,) 1-D values
    kmeans = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(similarity.double().numpy()[:, None])
    low, high = lloyd_two_means(similarity)
    np.testing.assert_allclose([float(low), float(high)], np.sort(kmeans.cluster_centers_[:, 0]), rtol=1e-5)
    foreground = two_means_foreground(similarity).numpy()
    high_label = int(np.argmax(kmeans.cluster_centers_[:, 0]))  # labels agree up to the swap
    np.testing.assert_array_equal(foreground, kmeans.labels_ == high_label)
    assert foreground.reshape(16, 16)[y0 : y0 + 6, x0 : x0 + 6].all()


@pytest.mark.parametrize("seed", range(5))
def test_two_means_is_lloyds_algorithm_from_the_extremes(seed: int) -> None:
    """Where 1-D 2-means has several local optima (values with no clear gap), ours is the one Lloyd's
    algorithm reaches from the smallest and the largest value: KMeans started there agrees."""
    values = torch.rand(300, generator=generator(seed)) ** (1 + seed)
    start = np.array([[float(values.min())], [float(values.max())]])
    kmeans = KMeans(n_clusters=2, init=start, n_init=1).fit(values.double().numpy()[:, None])
    low, high = lloyd_two_means(values)
    np.testing.assert_allclose([float(low), float(high)], kmeans.cluster_centers_[:, 0], rtol=1e-5)
    np.testing.assert_array_equal(two_means_foreground(values).numpy(), kmeans.labels_ == 1)


def test_the_reference_module_tables_every_function_with_its_fast_path() -> None:
    names = [name for name in dir(reference) if name.endswith("_reference")]
    assert len(names) == 20
    assert [name for name in names if f":func:`{name}`" not in (reference.__doc__ or "")] == []
