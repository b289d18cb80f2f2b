# ruff: noqa: N803, N806 (the papers' symbols: F_j, M_1, B_j, Q, K, V, H_gamma)
"""The method as its equations: one short, slow function per injection and loss step.

Each function reads like the paper it cites: per frame, per box, per patch, in plain loops and in the
papers' symbols. Each computes what a fast batched path of ``features``, ``trajectory`` or
``controls`` computes, and ``tests/daemon/test_reference.py`` holds the two equal on random inputs.
Nothing in the pipeline calls this module; read it to learn what the pipeline does.

Papers: AnyI2V (Li et al., ICCV 2025, arXiv 2507.02857) and its appendix A.1; SG-I2V (Namekata et
al., ICLR 2025, arXiv 2411.04989). The papers number frames 1..f; code numbers them 0..f-1, so the
papers' F_1 is ``F[0]`` here.

Each reference and the fast path it is tested against:

- :func:`patch_adain_reference`: ``features.patch_adain``;
- :func:`inject_residual_reference`: the ``conv2`` hook of ``controls``;
- :func:`inject_query_reference`, :func:`copy_kv_reference`, :func:`self_attention_reference`:
  ``controls.ControlledSelfAttention``;
- :func:`pca_reference`: ``features.low_rank_pca`` with the exact solver (the randomized one agrees
  to float precision on features with a decaying spectrum, which the tests check against scikit-learn);
- :func:`feature_map_reference`: ``trajectory.feature_grid``;
- :func:`grid_box_reference`, :func:`grid_point_reference`, :func:`visible_reference`:
  ``trajectory.track_boxes`` and ``trajectory.visible_box``;
- :func:`two_means_reference`: ``features.lloyd_two_means``;
- :func:`similarity_reference`, :func:`semantic_mask_reference`: ``features.semantic_mask``;
- :func:`pooled_semantic_masks_reference`: ``features.pooled_semantic_masks``;
- :func:`salient_point_features_reference`, :func:`object_loss_reference`,
  :func:`trajectory_loss_reference`: ``trajectory.trajectory_loss``;
- :func:`gaussian_weight_reference`: ``features.gaussian_profile`` (the outer product of two);
- :func:`butterworth_lowpass_reference`: ``features.butterworth_lowpass``;
- :func:`mix_frequencies_reference`: ``features.mix_frequencies``.

These are the equations of this code, which follow the authors' code as ``ANYI2V-FACTS.md`` reads it:
the K/V copy in the conditional half of the CFG batch (``halves="both"`` is our other choice); a box
partly outside the frame resized whole and then cut to the frame; the 2-means of the semantic masks
pooled over the optimized layers; the loss normalised by the weights' sum over all frames; the
Gaussian's sigma 0.2 of the side (SG-I2V). Where this code goes past theirs, the functions say so:
patches that do not divide a map (the remainder joins the last patch), and a first box partly outside
the frame (its unseen part is unknown, and weighs nothing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, Protocol

import torch
import torch.nn.functional as functional

EPSILON = 1e-6  # AdaIN's guard against a flat patch
Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) on a grid, end-exclusive


# 1. Structure-preserved feature injection (AnyI2V, "Structure-Preserved Feature Injection").


def patch_adain_reference(F_inv: torch.Tensor, F_cur: torch.Tensor, p: int = 4) -> torch.Tensor:
    """Patch-wise AdaIN: the inverted residual state, debiased with the current one's statistics.

    For every channel c and every non-overlapping p x p patch P (AnyI2V, p = 4; AdaIN: Huang &
    Belongie, ICCV 2017)::

        F_inj[c, P] = (F_inv[c, P] - mu(F_inv[c, P])) / (sigma(F_inv[c, P]) + 1e-6) * sigma(F_cur[c, P])
                      + mu(F_cur[c, P])

    mu and sigma are the mean and the population standard deviation of the patch's values.

    F_inv : (C, h, w) residual hidden state recorded at t_alpha during inversion
    F_cur : (C, h, w) frame 1's residual hidden state in the current UNet call
    p : patch side. Where p does not divide a side (sizes the authors never run), the remainder joins
        the last patch of that side, and a side shorter than p is one patch (ours)
    returns : (C, h, w) F_inj, in F_inv's dtype (statistics in at least float32)
    """
    C, h, w = F_inv.shape

    def spans(length: int) -> list[tuple[int, int]]:
        starts = list(range(0, max(1, length // p) * p, p))
        return [(start, starts[i + 1] if i + 1 < len(starts) else length) for i, start in enumerate(starts)]

    work = torch.promote_types(F_inv.dtype, torch.float32)
    F_inj = torch.empty(C, h, w, dtype=work)
    for c in range(C):
        for y0, y1 in spans(h):
            for x0, x1 in spans(w):
                inv = F_inv[c, y0:y1, x0:x1].to(work)
                cur = F_cur[c, y0:y1, x0:x1].to(work)
                normalised = (inv - inv.mean()) / (inv.std(unbiased=False) + EPSILON)
                F_inj[c, y0:y1, x0:x1] = normalised * cur.std(unbiased=False) + cur.mean()
    return F_inj.to(F_inv.dtype)


def inject_residual_reference(
    R: torch.Tensor, R_inv: torch.Tensor, frames: int, conditional_index: int, p: int = 4, adain: bool = True
) -> torch.Tensor:
    """Residual injection into the first frame of the conditional batch item::

        R[cond, 1] <- SG(PatchAdaIN(R_inv, R[cond, 1], p))      (R_inv itself without AdaIN)

    SG is stop-gradient: what is injected is a constant to the optimization (the authors' code). Every
    other frame and the unconditional item keep their own residual states.

    R : (B * f, C, h, w) a ResNet block's residual branch (after ``conv2``), batch-major rows b * f + j
    R_inv : (C, h, w) the recorded one
    """
    out = R.clone()
    row = conditional_index * frames + 0  # frame 1 of the conditional item
    out[row] = patch_adain_reference(R_inv, R[row].detach(), p) if adain else R_inv
    return out


def inject_query_reference(Q: torch.Tensor, Q_inv: torch.Tensor, frames: int, conditional_index: int) -> torch.Tensor:
    """Query injection: Q[cond, 1] <- Q_inv, no AdaIN; every other row keeps its own query.

    Q : (B * f, N, C) ``to_q`` of a self-attention layer's input, batch-major rows b * f + j
    Q_inv : (N, C) the query recorded at t_alpha
    """
    out = Q.clone()
    out[conditional_index * frames + 0] = Q_inv  # frame 1 of the conditional item
    return out


def copy_kv_reference(
    K: torch.Tensor, V: torch.Tensor, frames: int, conditional_index: int, halves: str = "conditional"
) -> tuple[torch.Tensor, torch.Tensor]:
    """K_{2:f} = K_1, V_{2:f} = V_1 (AnyI2V; SG-I2V Sec. 3.2 aligns features the same way): every frame
    attends to its batch item's first-frame keys and values. Applied to the conditional item only, as
    the authors do, or to every item (both halves of the CFG batch) with ``halves="both"`` (ours).

    K, V : (B * f, N, C), batch-major rows b * f + j
    """
    K_out, V_out = K.clone(), V.clone()
    items = range(K.shape[0] // frames) if halves == "both" else [conditional_index]
    for b in items:
        for j in range(1, frames):
            K_out[b * frames + j] = K[b * frames]
            V_out[b * frames + j] = V[b * frames]
    return K_out, V_out


def self_attention_reference(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, heads: int) -> torch.Tensor:
    """Softmax(Q_h K_h^T / sqrt(d)) V_h for every row and head h (channels split into ``heads`` groups of
    d), the heads concatenated again: (B, N, C) -> (B, N, C), before the output projection."""
    rows, _, channels = Q.shape
    d = channels // heads
    out = torch.empty_like(Q)
    for row in range(rows):
        for h in range(heads):
            part = slice(h * d, (h + 1) * d)
            scores = Q[row, :, part] @ K[row, :, part].T / math.sqrt(d)
            out[row, :, part] = torch.softmax(scores, dim=-1) @ V[row, :, part]
    return out


# 2. Zero-shot trajectory control: features (AnyI2V, "Zero-Shot Trajectory Control").


def pca_reference(X: torch.Tensor, M: int) -> tuple[torch.Tensor, torch.Tensor]:
    """F_j = PCA(Query_j, M): the tokens of all frames, pooled, projected on their top M principal axes.

    With x_1 .. x_n every token of every frame::

        mu = 1/n sum_i x_i,    Sigma = 1/(n - 1) sum_i (x_i - mu)(x_i - mu)^T,
        U_M = the eigenvectors of Sigma with the M largest eigenvalues lambda_1 >= ... >= lambda_M,
        F_j[t] = (X_j[t] - mu) U_M

    X : (f, N, C) one layer's queries (or residual states as tokens) of every frame
    returns : F (f, N, M') and the eigenvalues (M',), M' = min(M, C); each axis's sign is arbitrary
    """
    tokens = [X[j, t] for j in range(X.shape[0]) for t in range(X.shape[1])]
    n = len(tokens)
    mu = sum(tokens, torch.zeros_like(tokens[0])) / n
    Sigma = sum((torch.outer(x - mu, x - mu) for x in tokens), torch.zeros(X.shape[2], X.shape[2], dtype=X.dtype))
    Sigma = Sigma / max(1, n - 1)
    eigenvalues, eigenvectors = torch.linalg.eigh(Sigma)  # ascending
    order = torch.argsort(eigenvalues, descending=True)[: min(M, X.shape[2])]
    U_M = eigenvectors[:, order]
    F = torch.stack([torch.stack([(X[j, t] - mu) @ U_M for t in range(X.shape[1])]) for j in range(X.shape[0])])
    return F, eigenvalues[order]


def feature_map_reference(X: torch.Tensor, M: int | None, hw: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Each frame's PCA features laid out on the layer's (h, w) token grid and resized bicubically to the
    loss grid (H/4 x W/4 of the output: 128 x 128 at 512); ``M=None`` skips PCA (the ablation).

    X : (f, N, C) tokens, N = h * w in row-major order; returns (f, M', H, W)
    """
    F = X if M is None else pca_reference(X, M)[0]
    h, w = hw
    maps = []
    for j in range(F.shape[0]):
        F_j = torch.stack([F[j, :, m].reshape(h, w) for m in range(F.shape[2])])  # (M', h, w)
        maps.append(functional.interpolate(F_j[None], size=size, mode="bicubic", align_corners=False)[0])
    return torch.stack(maps)


def visible_reference(B: Box, H: int, W: int) -> Box | None:
    """The part of a grid box inside the H x W grid; None when there is none."""
    x0, y0, x1, y1 = max(0, B[0]), max(0, B[1]), min(W, B[2]), min(H, B[3])
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def grid_box_reference(box: Sequence[float], H: int, W: int) -> Box | None:
    """A normalized box (x0, y0, x1, y1) on the H x W loss grid: rounded outwards and kept whole (a box
    partly outside the frame reaches past the grid); None when no part of it is visible."""
    x0, y0, x1, y1 = box
    B = (math.floor(x0 * W), math.floor(y0 * H), math.ceil(x1 * W), math.ceil(y1 * H))
    return B if visible_reference(B, H, W) is not None else None


def grid_point_reference(point: Sequence[float], B_1: Box, H: int, W: int) -> tuple[int, int]:
    """A normalized salient point (x, y) as the grid pixel that holds it, moved into the visible part of
    the frame-1 box B_1 (a click outside it lands on its nearest edge pixel)."""
    x0, y0, x1, y1 = visible_reference(B_1, H, W) or B_1
    return min(max(int(point[0] * W), x0), x1 - 1), min(max(int(point[1] * H), y0), y1 - 1)


# 3. Semantic masks (AnyI2V, "Semantic Mask Generation").


def two_means_reference(values: Sequence[float], iterations: int = 10) -> tuple[float, float]:
    """k-means with k = 2 on scalars by Lloyd's algorithm: centres (c_low, c_high) start at the smallest
    and the largest value; each of ``iterations`` rounds puts every value with the nearer centre (a tie
    goes to c_low) and moves each centre to its values' mean (an empty cluster keeps its centre)."""
    c_low, c_high = min(values), max(values)
    for _ in range(iterations):
        high = [v for v in values if abs(v - c_low) > abs(v - c_high)]
        low = [v for v in values if not abs(v - c_low) > abs(v - c_high)]
        c_low = sum(low) / len(low) if low else c_low
        c_high = sum(high) / len(high) if high else c_high
    return c_low, c_high


def similarity_reference(F_P: torch.Tensor, F_B: torch.Tensor) -> torch.Tensor:
    """S(x) = max_p cos(F_1(p), F_j(x)) for every pixel x of the box (p over the salient points P).

    F_P : (P, C) the salient points' frame-1 features; F_B : (C, h, w) F_j[B_j]; returns (h, w) float64
    """
    _, h, w = F_B.shape
    S = torch.empty(h, w, dtype=torch.float64)
    for y in range(h):
        for x in range(w):
            pixel = F_B[:, y, x].double()
            S[y, x] = max(float(pixel @ q.double() / (pixel.norm() * q.double().norm())) for q in F_P)
    return S


def pooled_semantic_masks_reference(S: Sequence[torch.Tensor], iterations: int = 10) -> list[torch.Tensor]:
    """M_j of every layer at once, as the authors split them: 2-means (:func:`two_means_reference`) on
    the values S(x) of all layers' maps pooled together; each layer's foreground is its pixels nearer
    c_high than c_low. Values that are all one constant are all foreground.

    S : per layer (h, w) :func:`similarity_reference` in one frame's box; returns per layer (h, w) of 0, 1
    """
    values = [v for S_l in S for v in S_l.flatten().tolist()]
    if max(values) - min(values) <= EPSILON:
        return [torch.ones(S_l.shape) for S_l in S]
    c_low, c_high = two_means_reference(values, iterations)
    return [((S_l - c_low).abs() > (S_l - c_high).abs()).float() for S_l in S]


def semantic_mask_reference(F_P: torch.Tensor, F_B: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """M_j: the object's pixels inside its box in frame j, from one layer.

    2-means on the values S(x) of :func:`similarity_reference`; the foreground is the cluster with the
    larger centre: M_j(x) = 1 where S(x) is nearer c_high than c_low. A constant S is all foreground.
    (The loss pools the layers: :func:`pooled_semantic_masks_reference`; this is its one-layer case.)

    F_P : (P, C) the salient points' frame-1 features; F_B : (C, h, w) F_j[B_j]; returns (h, w) of 0, 1
    """
    return pooled_semantic_masks_reference([similarity_reference(F_P, F_B)], iterations)[0]


def salient_point_features_reference(
    F_1B: torch.Tensor, points: Sequence[tuple[int, int]], auto_points: int = 3
) -> torch.Tensor:
    """F_1(P): the salient points' features, from frame 1's box F_1[B_1] (C, h, w).

    points : (x, y) inside the box, the user's clicks. Without any (our choice; the paper asks the
    user): the box's centre pixel and the ``auto_points - 1`` pixels whose unit features are most
    cosine-similar to the box's mean unit feature.
    """
    if points:
        return torch.stack([F_1B[:, y, x] for x, y in points])
    _, h, w = F_1B.shape
    unit = {(y, x): F_1B[:, y, x] / F_1B[:, y, x].norm() for y in range(h) for x in range(w)}
    mean = sum(unit.values(), torch.zeros_like(F_1B[:, 0, 0])) / len(unit)
    mean = mean / mean.norm()
    ranked = sorted(unit, key=lambda yx: float(unit[yx] @ mean), reverse=True)[: auto_points - 1]
    return torch.stack([F_1B[:, (h - 1) // 2, (w - 1) // 2], *(F_1B[:, y, x] for y, x in ranked)])


# 4. The loss (AnyI2V appendix A.1; SG-I2V Eq. (1) for the Gaussian weighting).


def gaussian_weight_reference(h: int, w: int) -> torch.Tensor:
    """G(y, x) = exp(-(y - c_y)^2 / (2 sigma_y^2) - (x - c_x)^2 / (2 sigma_x^2)) over an h x w box, 1 at
    its centre (c_y, c_x) = ((h - 1)/2, (w - 1)/2), sigma = (max(0.2 h, 1/2), max(0.2 w, 1/2)).

    SG-I2V's G_b (Eq. (1), after DragAnything), which weights the loss towards the box's centre, with
    SG-I2V's sigma of 0.2 of the side (the half-pixel floor is ours, for boxes of a pixel or two).
    """
    sigma_y, sigma_x = max(0.2 * h, 0.5), max(0.2 * w, 0.5)
    c_y, c_x = (h - 1) / 2, (w - 1) / 2
    G = torch.empty(h, w)
    for y in range(h):
        for x in range(w):
            G[y, x] = math.exp(-((y - c_y) ** 2) / (2 * sigma_y**2) - (x - c_x) ** 2 / (2 * sigma_x**2))
    return G


class BoxTrack(Protocol):
    """One object on the loss grid (``trajectory.TrackBoxes`` is one)."""

    @property
    def boxes(self) -> tuple[Box | None, ...]: ...  # B_1 .. B_f, whole; None where no part is visible
    @property
    def points(self) -> tuple[tuple[int, int], ...]: ...  # salient points (x, y) on the grid, in B_1
    @property
    def anchor(self) -> bool: ...  # background that expresses camera motion: no semantic mask


def _whole(inner: torch.Tensor, B: Box, V: Box, mode: Literal["replicate", "constant"]) -> torch.Tensor:
    """A map of box B's visible part V (..., h_V, w_V) made the size of the whole box B: its edge pixels
    repeated outwards (``"replicate"``) or zeros (``"constant"``)."""
    pad = (V[0] - B[0], B[2] - V[2], V[1] - B[1], B[3] - V[3])  # left, right, top, bottom
    batch = inner.reshape(-1, 1, *inner.shape[-2:]).double()
    whole = functional.pad(batch, pad, mode=mode) if any(pad) else batch
    return whole.reshape(*inner.shape[:-2], *whole.shape[-2:])


def object_loss_reference(
    grids: Sequence[torch.Tensor], track: BoxTrack, mask: Literal["dynamic", "static", "none"], gaussian: bool
) -> torch.Tensor:
    """sum_layers L^i for one object i, each layer's F (f, M, H, W) of ``grids``::

        L^i = sum_{j=2..f} sum_x W_j(x) * mean_c (F_j[B_j^i] - resize(SG(F_1[B_1^i]), B_j^i))^2(c, x)
              / max(1, sum_{j=2..f} sum_x W_j(x))
        W_j = resize(M_1^i, B_j^i) * M_j^i * G_j        (each factor only when enabled)

    - B_j : frame j's whole box; F_j[B] the features inside it, and only its pixels inside the frame
      take part: frame 1's box is resized to frame j's whole box, then cut to the frame (the authors'),
      so an object leaving the frame is not squashed into its visible part. A frame-1 box partly
      outside (ours): its visible part, edge pixels repeated outwards, is resized as the whole box, and
      the pixels of frame j that come from its unseen part weigh 0;
    - resize : bicubic for features (so boxes may change size), nearest for masks;
    - SG : stop-gradient: the loss moves frame j towards frame 1, never the reverse;
    - M_1^i, M_j^i : semantic masks of frames 1 and j (``"static"``: M_j^i = resize(M_1^i)), from one
      2-means per frame over every layer's similarities (:func:`pooled_semantic_masks_reference`);
      no masks for ``"none"`` or an anchor;
    - G_j : :func:`gaussian_weight_reference` over the whole B_j^i.

    The paper writes || M_1 ⊙ M_j ⊙ (F_j - SG(F_1)) ||^2; with binary masks that is the sum above
    (channels averaged, normalised by the masks' sum over all frames, as the authors' code does). A frame
    whose box has left contributes 0.
    """
    B_1 = track.boxes[0]
    f, _, H, W = grids[0].shape
    V_1 = visible_reference(B_1, H, W) if B_1 is not None else None
    if B_1 is None or V_1 is None or f < 2:
        return torch.zeros(())
    x0, y0, x1, y1 = V_1
    F_1B = [F[0, :, y0:y1, x0:x1].detach() for F in grids]  # SG(F_1[B_1]), its visible part
    seen_1 = torch.ones(y1 - y0, x1 - x0)
    use_masks = mask != "none" and not track.anchor
    if use_masks:
        points = [(x - x0, y - y0) for x, y in track.points]
        F_P = [salient_point_features_reference(F_1B_l, points) for F_1B_l in F_1B]
        M_1 = pooled_semantic_masks_reference([similarity_reference(P, B) for P, B in zip(F_P, F_1B, strict=True)])
    totals = [torch.zeros(()) for _ in grids]
    weight_sums = [torch.zeros((), dtype=torch.float64) for _ in grids]
    for j in range(1, f):
        B_j = track.boxes[j]
        V_j = visible_reference(B_j, H, W) if B_j is not None else None
        if B_j is None or V_j is None:
            continue
        bx0, by0, bx1, by1 = V_j
        size = (B_j[3] - B_j[1], B_j[2] - B_j[0])  # the whole box
        cut = (slice(by0 - B_j[1], by1 - B_j[1]), slice(bx0 - B_j[0], bx1 - B_j[0]))  # its visible part
        F_jB = [F[j, :, by0:by1, bx0:bx1] for F in grids]
        if use_masks and mask == "dynamic":
            S_j = [similarity_reference(P, B.detach()) for P, B in zip(F_P, F_jB, strict=True)]
            M_j = pooled_semantic_masks_reference(S_j)
        seen = functional.interpolate(_whole(seen_1, B_1, V_1, "constant")[None, None], size=size, mode="nearest")
        for layer, F_1B_l in enumerate(F_1B):
            whole = _whole(F_1B_l, B_1, V_1, "replicate")  # (M, h_B1, w_B1)
            target = functional.interpolate(whole[None], size=size, mode="bicubic", align_corners=False)[0]
            W_j = seen[0, 0][cut]
            if use_masks:
                M_1l = _whole(M_1[layer], B_1, V_1, "constant")  # unseen pixels are not the object
                M_1j = functional.interpolate(M_1l[None, None], size=size, mode="nearest")[0, 0][cut]
                W_j = M_1j * (M_j[layer] if mask == "dynamic" else M_1j)
            if gaussian:
                W_j = W_j * gaussian_weight_reference(*size).double()[cut]
            error = ((F_jB[layer] - target[:, cut[0], cut[1]].to(F_jB[layer].dtype)) ** 2).mean(0)  # (h_j, w_j)
            totals[layer] = totals[layer] + (W_j.to(error.dtype) * error).sum()
            weight_sums[layer] = weight_sums[layer] + W_j.sum()
    total = torch.zeros(())
    for layer_total, weight_sum in zip(totals, weight_sums, strict=True):
        total = total + layer_total / weight_sum.clamp_min(1.0).to(layer_total.dtype)
    return total


def trajectory_loss_reference(
    grids: Sequence[torch.Tensor],
    tracks: Sequence[BoxTrack],
    mask: Literal["dynamic", "static", "none"] = "dynamic",
    gaussian: bool = False,
) -> torch.Tensor:
    """The objective z_t* = argmin_{z_t} sum_{i=1..n} sum_layers L^i (AnyI2V; the layers are the
    optimized queries, "Query 1.1" and "Query 2.0"), with L^i from :func:`object_loss_reference`.

    grids : per layer (f, M, H, W), from :func:`feature_map_reference`
    """
    total = torch.zeros(())
    for track in tracks:
        total = total + object_loss_reference(grids, track, mask, gaussian)
    return total


# 5. High-frequency preserved post-processing (SG-I2V Sec. 3.4, Eq. (2)).


def butterworth_lowpass_reference(h: int, w: int, gamma: float, n: int) -> torch.Tensor:
    """H_gamma(u, v) = 1 / (1 + (r(u, v) / gamma)^(2n)): a Butterworth low-pass of order n on the
    unshifted h x w 2D FFT grid, r the frequency's radius in units of Nyquist (1 at the Nyquist
    frequency), gamma the cut-off in those units (SG-I2V: gamma = 0.5, after FreeTraj; order 4)."""

    def frequency(k: int, length: int) -> float:  # cycles per sample of FFT bin k, times 2 (Nyquist = 1)
        return 2 * (k if k < (length + 1) // 2 else k - length) / length

    H_gamma = torch.empty(h, w)
    for u in range(h):
        for v in range(w):
            r = math.hypot(frequency(u, h), frequency(v, w))
            H_gamma[u, v] = 1 / (1 + (r / gamma) ** (2 * n))
    return H_gamma


def mix_frequencies_reference(z_star: torch.Tensor, z: torch.Tensor, gamma: float, n: int) -> torch.Tensor:
    """z~_t = IFFT_2D(FFT_2D(z*_t) ⊙ H_gamma + FFT_2D(z_t) ⊙ (1 - H_gamma)) per frame and channel: the
    optimized latent's low frequencies, the original latent's high ones (SG-I2V Eq. (2)).

    z_star, z : (f, C, h, w) the optimized and the original latent; returns z~_t in z_star's dtype
    """
    f, C, h, w = z_star.shape
    H_gamma = butterworth_lowpass_reference(h, w, gamma, n).to(torch.float64)
    z_tilde = torch.empty(f, C, h, w, dtype=torch.float64)
    for j in range(f):
        for c in range(C):
            low = torch.fft.fft2(z_star[j, c].double()) * H_gamma
            high = torch.fft.fft2(z[j, c].double()) * (1 - H_gamma)
            z_tilde[j, c] = torch.fft.ifft2(low + high).real
    return z_tilde.to(z_star.dtype)
