"""The method's tensor operations, in torch on the model's device (no CPU round trips in hot paths).

- :func:`patch_adain`: patch-wise AdaIN that debiases injected residual states.
- :func:`low_rank_pca`: project features on their top principal components (fit without gradient,
  projection with it); the axes by seeded randomized subspace iteration
  (:func:`randomized_top_eigenvectors`) or a full eigendecomposition (:func:`exact_top_eigenvectors`).
- :func:`two_means_foreground`: 1-D 2-means (Lloyd's algorithm, :func:`lloyd_two_means`) that splits
  similarity values into foreground and background.
- :func:`semantic_mask`: the per-frame semantic mask of an object from salient points;
  :func:`pooled_semantic_masks`: the masks of several layers from one 2-means per frame.
- :func:`bicubic_resize`: bicubic resampling as two matrix products.
- :func:`gaussian_profile`, :func:`butterworth_lowpass`, :func:`mix_frequencies`: the SG-I2V options.

Shapes: C channels, h x w spatial, F frames, N tokens. Each has a plain-loop twin written as the
papers' equations in :mod:`.reference`, and tests that hold the two equal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as functional
from einops import rearrange

EPSILON = 1e-6


def patch_spans(length: int, patch: int) -> list[tuple[int, int]]:
    """Where the patches of one side begin and end: ``patch`` pixels each, the remainder joined to the
    last one (so every patch has ``patch`` to ``2 * patch - 1`` pixels), one patch when the side is
    shorter than ``patch``. ``patch_spans(17, 4)`` is (0, 4), (4, 8), (8, 12), (12, 17)."""
    count = max(1, length // patch)
    starts = [index * patch for index in range(count)]
    return list(zip(starts, [*starts[1:], length], strict=True))


def _patch_membership(length: int, patch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(length, patches) one-hot: which patch of :func:`patch_spans` each pixel of a side belongs to."""
    count = max(1, length // patch)
    index = (torch.arange(length, device=device) // patch).clamp_max(count - 1)
    return functional.one_hot(index, count).to(dtype)


def patch_adain(source: torch.Tensor, target: torch.Tensor, patch: int) -> torch.Tensor:
    """Give ``source`` the per-patch, per-channel mean and standard deviation of ``target``.

    source, target : (C, h, w), the same shape; patch : side of the square patches (p x p). Where p does
    not divide a side, the remainder joins the last patch of that side, and a side shorter than p is one
    patch (:func:`patch_spans`): every map size keeps patches of about p (SD 1.5 at 520 pixels runs
    ``up_blocks.1`` at 17 x 17, which p = gcd(17, 4) = 1 would turn into no injection at all).
    returns : (C, h, w) = (source - mean_s) / (std_s + 1e-6) * std_t + mean_t, statistics per patch.
    Standard deviations are population ones (divide by the patch's pixel count).
    """
    if source.shape != target.shape or source.dim() != 3:
        raise ValueError(f"patch_adain needs two (C, h, w) tensors of one shape, got {source.shape} and {target.shape}")
    _, height, width = source.shape
    work = torch.promote_types(source.dtype, torch.float32)  # half precision in, float32 statistics
    rows = _patch_membership(height, patch, source.device, work)  # (h, Y)
    columns = _patch_membership(width, patch, source.device, work)  # (w, X)
    counts = rows.sum(0)[:, None] * columns.sum(0)[None, :]  # (Y, X) pixels per patch

    def statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # per-pixel mean and std of its patch
        mean = rows @ ((rows.T @ x @ columns) / counts) @ columns.T
        variance = (rows.T @ (x - mean) ** 2 @ columns) / counts
        return mean, rows @ variance.sqrt() @ columns.T

    src, tgt = source.to(work), target.to(work)
    (src_mean, src_std), (tgt_mean, tgt_std) = statistics(src), statistics(tgt)
    out = (src - src_mean) / (src_std + EPSILON) * tgt_std + tgt_mean
    return out.to(source.dtype)


SUBSPACE_OVERSAMPLING = 128  # extra directions the randomized solver carries beyond the components wanted
SUBSPACE_ITERATIONS = 3
SUBSPACE_SEED = 0
PCA_SOLVERS = ("randomized", "exact")


def exact_top_eigenvectors(covariance: torch.Tensor, components: int) -> torch.Tensor:
    """(C, k) the covariance's top-k eigenvectors, strongest first, by a full eigendecomposition.

    covariance : (C, C) symmetric; k = min(components, C). Each column's sign is whatever the
    eigensolver returns.
    """
    components = min(components, covariance.shape[0])
    _, vectors = torch.linalg.eigh(covariance)  # ascending eigenvalues
    strongest: torch.Tensor = vectors.flip(1)[:, :components]
    return strongest


def randomized_top_eigenvectors(covariance: torch.Tensor, components: int) -> torch.Tensor:
    """(C, k) approximate top-k eigenvectors of a covariance, strongest first: seeded randomized
    subspace iteration followed by Rayleigh-Ritz.

    covariance : (C, C) symmetric positive semi-definite; k = min(components, C).

    A seeded Gaussian (C, k + :data:`SUBSPACE_OVERSAMPLING`) start is multiplied by the covariance and
    re-orthonormalised (QR) :data:`SUBSPACE_ITERATIONS` times (the power / subspace iteration of
    Halko, Martinsson & Tropp 2011, "Finding structure with randomness", Alg. 4.4); the covariance
    restricted to that subspace is then diagonalised exactly and its top k Ritz vectors lifted back.
    When the spectrum decays (as features' do) the span agrees with the exact one to float precision.
    The seed is fixed (:data:`SUBSPACE_SEED`), so results repeat.
    """
    channels = covariance.shape[0]
    components = min(components, channels)
    width = components + SUBSPACE_OVERSAMPLING
    generator = torch.Generator(covariance.device).manual_seed(SUBSPACE_SEED)
    start = torch.randn(channels, width, generator=generator, device=covariance.device, dtype=covariance.dtype)
    basis = start
    for _ in range(SUBSPACE_ITERATIONS):
        basis, _ = torch.linalg.qr(covariance @ basis)
    _, vectors = torch.linalg.eigh(basis.T @ covariance @ basis)
    ritz: torch.Tensor = basis @ vectors.flip(1)[:, :components]
    return ritz


def top_eigenvectors(covariance: torch.Tensor, components: int, solver: str = "randomized") -> torch.Tensor:
    """(C, k) orthonormal basis of the covariance's top-k eigenvectors (the principal axes), strongest
    first, by ``solver``: ``"randomized"`` (:func:`randomized_top_eigenvectors`) or ``"exact"``
    (:func:`exact_top_eigenvectors`).

    A GPU eigendecomposition of a 1280 x 1280 matrix costs about 16 ms, mostly latency; the randomized
    fit about 7 ms, and on the benchmark's features its loss is within 3e-4 of the exact one and its
    gradient's cosine to the exact gradient above 0.9997. When the randomized subspace would span
    (nearly) everything (2 (k + oversampling) > C), the exact solver runs.
    """
    if solver not in PCA_SOLVERS:
        raise ValueError(f"unknown PCA solver {solver!r} (randomized or exact)")
    channels = covariance.shape[0]
    width = min(components, channels) + SUBSPACE_OVERSAMPLING
    if solver == "exact" or width * 2 > channels:
        return exact_top_eigenvectors(covariance, components)
    return randomized_top_eigenvectors(covariance, components)


def low_rank_pca(features: torch.Tensor, components: int | None, solver: str = "randomized") -> torch.Tensor:
    """Project token features on their top principal components, fitted jointly over all tokens: a
    low-rank PCA, by default with the randomized solver (:func:`top_eigenvectors`).

    features : (..., N, C); returns (..., N, k) with k = min(components, C): F = (X - mean) U_k, the
    mean and the covariance (divided by n - 1) over every token of every leading index. The basis and
    mean are fitted without gradient; the projection keeps the gradient, so the loss reaches the latent.
    ``components=None`` returns the features unchanged (the "w/o PCA" ablation).
    """
    if components is None:
        return features
    flat = features.reshape(-1, features.shape[-1])
    with torch.no_grad():
        data = flat.detach().float()
        mean = data.mean(0, keepdim=True)
        centred = data - mean
        covariance = centred.T @ centred / max(1, data.shape[0] - 1)
        basis = top_eigenvectors(covariance, components, solver)
    projected: torch.Tensor = (flat.float() - mean) @ basis
    return projected.reshape(*features.shape[:-1], basis.shape[1])


TWO_MEANS_ITERATIONS = 10


def _problems(values: torch.Tensor, start_dim: int, valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Values and validity as (problems, m): dimensions from ``start_dim`` on flattened into one."""
    flat = values.detach().float().flatten(start_dim)  # (*batch, m)
    keep = torch.ones_like(flat, dtype=torch.bool) if valid is None else valid.flatten(start_dim)
    if start_dim == 0:
        flat, keep = flat[None], keep[None]
    return flat, keep


def _valid_min_max(flat: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(problems, 1) smallest and largest valid value of each problem (0 and 0 when none is valid)."""
    inf = torch.tensor(float("inf"), device=flat.device)
    low = torch.where(keep, flat, inf).amin(-1, keepdim=True)
    high = torch.where(keep, flat, -inf).amax(-1, keepdim=True)
    empty = ~keep.any(-1, keepdim=True)
    return torch.where(empty, 0.0, low), torch.where(empty, 0.0, high)


def _lloyd_iterations(
    flat: torch.Tensor, keep: torch.Tensor, low: torch.Tensor, high: torch.Tensor, iterations: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's steps for two centres on 1-D values: assign each value to the nearer centre (a tie goes
    to ``low``), move each centre to its values' mean (a centre with no value stays)."""
    for _ in range(iterations):
        upper = ((flat - low).abs() > (flat - high).abs()) & keep
        lower = keep & ~upper
        upper_count, lower_count = upper.sum(-1, keepdim=True), lower.sum(-1, keepdim=True)
        new_high = torch.where(upper_count > 0, (flat * upper).sum(-1, keepdim=True) / upper_count.clamp_min(1), high)
        new_low = torch.where(lower_count > 0, (flat * lower).sum(-1, keepdim=True) / lower_count.clamp_min(1), low)
        low, high = new_low, new_high
    return low, high


def lloyd_two_means(
    values: torch.Tensor, iterations: int = TWO_MEANS_ITERATIONS, start_dim: int = 0, valid: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two centres (low, high) of 1-D k-means with k = 2 by Lloyd's algorithm, started at the
    smallest and the largest value, for a fixed number of iterations (no convergence test, so the GPU
    never waits on the CPU; 1-D 2-means from those starts settles in a few). Lloyd's algorithm ends in
    a local optimum: on values with a clear gap it is the split scikit-learn's ``KMeans`` finds; a
    value between the clusters may stay on the side a restart from elsewhere would move it off.

    values : (*batch, ...) the dimensions from ``start_dim`` on are pooled into one problem, those
    before it are independent problems; valid : optional bool of the values' shape, the values taking
    part. returns : two (*batch,) tensors (a scalar each for ``start_dim=0``); 0 and 0 for a problem
    with no valid value.
    """
    flat, keep = _problems(values, start_dim, valid)
    low, high = _lloyd_iterations(flat, keep, *_valid_min_max(flat, keep), iterations)
    batch = values.shape[:start_dim]
    return low.reshape(batch), high.reshape(batch)


def two_means_foreground(
    values: torch.Tensor, iterations: int = TWO_MEANS_ITERATIONS, start_dim: int = 0, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Split values into two clusters by :func:`lloyd_two_means` and return the boolean mask of the
    cluster with the larger centre (values nearer the high centre; a tie is background). Constant
    input is all foreground.

    The values from dimension ``start_dim`` on are clustered together; the dimensions before it are a
    batch of independent problems (``start_dim=0``: one problem over the whole tensor). ``valid`` (a
    boolean tensor of the values' shape) keeps the other values out of the clustering; they come back
    False. A problem with no valid value is all False.
    """
    flat, keep = _problems(values, start_dim, valid)
    start_low, start_high = _valid_min_max(flat, keep)
    constant = (start_high - start_low) <= EPSILON
    low, high = _lloyd_iterations(flat, keep, start_low, start_high, iterations)
    foreground = (((flat - low).abs() > (flat - high).abs()) | constant) & keep
    return foreground.reshape(values.shape)


def point_similarity(point_features: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """(..., h, w) cosine similarity of every pixel of ``maps`` (..., C, h, w) to its most similar salient
    point of ``point_features`` (P, C); no gradient."""
    pixels = functional.normalize(rearrange(maps.detach().float(), "... c h w -> ... (h w) c"), dim=-1)
    points = functional.normalize(point_features.detach().float(), dim=1)  # (P, C)
    best = (pixels @ points.T).amax(dim=-1)  # (..., h*w): the most similar point's cosine
    return rearrange(best, "... (h w) -> ... h w", h=maps.shape[-2])


def semantic_mask(
    point_features: torch.Tensor, box_features: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """The object's mask inside a box: cosine similarity of every pixel to the salient points' features
    (max over points), split by 1-D 2-means (:func:`two_means_foreground`).

    point_features : (P, C) features of the salient points in frame 0
    box_features : (..., C, h, w) the box's features in some frame (or a batch of maps)
    valid : optional (..., h, w) bool, the pixels that take part (the box, within a whole frame); the
        others come back 0
    returns : (..., h, w) float mask of 0 and 1, one 2-means split per map
    """
    similarity = point_similarity(point_features, box_features)
    return two_means_foreground(similarity, start_dim=similarity.dim() - 2, valid=valid).float()


def pooled_semantic_masks(similarities: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Semantic masks of several layers split together, as the authors do: per frame, one 2-means on the
    similarity values of every layer inside the box, each layer's mask its values nearer the high centre.

    similarities : (L, F, h, w) :func:`point_similarity` per layer and frame; valid : (F, h, w) bool, the
    box in each frame. returns : (L, F, h, w) float mask of 0 and 1 (0 outside ``valid``)
    """
    by_frame = rearrange(similarities, "l f h w -> f l h w")
    inside = valid[:, None].expand_as(by_frame)
    masks = two_means_foreground(by_frame, start_dim=1, valid=inside).float()
    return rearrange(masks, "f l h w -> l f h w")


def resize_matrix(size_in: int, size_out: int, mode: str, device: torch.device) -> torch.Tensor:
    """(size_out, size_in) matrix of torch's resampling along one axis (``"bicubic"`` with
    ``align_corners=False`` and clamped borders, or ``"nearest"``): the resize of the identity, so a
    product with it matches ``functional.interpolate`` exactly (both modes are separable)."""
    identity = torch.eye(size_in, device=device, dtype=torch.float32)[None, :, :, None]  # channel c = e_c
    options = {"align_corners": False} if mode == "bicubic" else {}
    resized = functional.interpolate(identity, size=(size_out, 1), mode=mode, **options)
    return resized[0, :, :, 0].T


def bicubic_resize(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``functional.interpolate(maps, size, mode="bicubic")`` for (..., h, w) float maps, as two matrix
    products (bicubic resampling is separable): on a GPU far faster than the resampling kernel, forward
    and backward."""
    rows = resize_matrix(maps.shape[-2], size[0], "bicubic", maps.device)
    columns = resize_matrix(maps.shape[-1], size[1], "bicubic", maps.device)
    resized: torch.Tensor = rows @ maps.float() @ columns.T
    return resized


GAUSSIAN_SIGMA = 0.2  # of the box's side: SG-I2V's paper and code


def gaussian_profile(length: int, device: torch.device) -> torch.Tensor:
    """(length,) Gaussian along one side of a box, 1 at its centre, sigma 0.2 of the side (SG-I2V; at
    least half a pixel); a box's weight is the outer product of its two sides' profiles (SG-I2V weights
    the loss this way so the box's centre matters most)."""
    offsets = torch.arange(length, device=device, dtype=torch.float32) - (length - 1) / 2
    sigma = max(GAUSSIAN_SIGMA * length, 0.5)
    return torch.exp(-(offsets**2) / (2 * sigma**2))


def butterworth_lowpass(height: int, width: int, cutoff: float, order: int, device: torch.device) -> torch.Tensor:
    """(h, w) Butterworth low-pass response on the (unshifted) 2D FFT grid; ``cutoff`` is a fraction of
    the Nyquist frequency."""
    fy = torch.fft.fftfreq(height, device=device) * 2  # in units of Nyquist: -1 .. 1
    fx = torch.fft.fftfreq(width, device=device) * 2
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    response: torch.Tensor = 1.0 / (1.0 + (radius / cutoff) ** (2 * order))
    return response


def mix_frequencies(optimized: torch.Tensor, original: torch.Tensor, cutoff: float, order: int) -> torch.Tensor:
    """Low frequencies of ``optimized`` and high ones of ``original``, per frame and channel (FFT over the
    last two dimensions)."""
    lowpass = butterworth_lowpass(optimized.shape[-2], optimized.shape[-1], cutoff, order, optimized.device)
    low = torch.fft.fft2(optimized.float()) * lowpass
    high = torch.fft.fft2(original.float()) * (1.0 - lowpass)
    mixed: torch.Tensor = torch.fft.ifft2(low + high).real
    return mixed.to(optimized.dtype)
