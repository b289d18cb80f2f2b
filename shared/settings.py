"""Generation settings: sampling and the AnyI2V method's knobs, with the paper's defaults.

Every ablation in the AnyI2V paper (arXiv 2507.02857, Table 3 and the appendix) is a setting here:

| ablation                         | setting                                   |
| -------------------------------- | ----------------------------------------- |
| w/o K&V consistency              | ``kv_copy = false``                       |
| w/o PCA reduction                | ``pca_components = null``                 |
| w/ static mask                   | ``mask = "static"``                       |
| w/o semantic mask                | ``mask = "none"``                         |
| optimize residual hidden states  | ``optimize_features = "residual"``        |
| single-resolution optimization   | one entry in ``optimized_layers``         |
| w/o AdaIN debiasing              | ``residual_adain = false``                |
| no control (plain AnimateDiff)   | ``trajectory_control = false`` and ``structure_injection = false`` |

Two settings keep an earlier version of this code as a choice; the default is what the authors' code
does: ``kv_copy_halves = "both"`` copies frame 0's keys and values in both halves of the guidance
batch (theirs: the conditional half), and ``sampling.timestep_spacing = "linspace"`` samples at 999,
957, 916, ... (theirs: leading spacing with offset 1, 961, 921, ..., 1 for 25 steps).

Layer names are diffusers module paths of ``UNetMotionModel``; the daemon checks them against the
loaded model and fails loudly when one does not exist.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from .model import DocumentModel

LAYER_PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"

LayerPath = Annotated[str, Field(pattern=LAYER_PATH_PATTERN, max_length=200)]

# ANYI2V-FACTS.md, "Layers" (SD 1.5 names at 512x512).
DEFAULT_QUERY_LAYERS: tuple[str, ...] = (
    "up_blocks.1.attentions.0.transformer_blocks.0.attn1",
    "up_blocks.1.attentions.1.transformer_blocks.0.attn1",
    "up_blocks.2.attentions.0.transformer_blocks.0.attn1",
    "up_blocks.2.attentions.1.transformer_blocks.0.attn1",
)
DEFAULT_RESIDUAL_LAYERS: tuple[str, ...] = (
    "up_blocks.1.resnets.0",
    "up_blocks.1.resnets.1",
    "up_blocks.2.resnets.0",
    "up_blocks.2.resnets.1",
)
# "Query 1.1" and "Query 2.0" of the paper: the two layers whose queries the loss aligns.
DEFAULT_OPTIMIZED_LAYERS: tuple[str, ...] = (
    "up_blocks.1.attentions.1.transformer_blocks.0.attn1",
    "up_blocks.2.attentions.0.transformer_blocks.0.attn1",
)


def _unique_layers(layers: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    for layer in layers:
        if layer in seen:
            raise ValueError(f"layer {layer!r} is listed twice")
        seen.add(layer)
    return layers


LayerList = Annotated[tuple[LayerPath, ...], AfterValidator(_unique_layers)]


class Sampling(DocumentModel):
    """The sampler: seed, number of DDIM steps and classifier-free guidance."""

    seed: int = Field(0, ge=0, le=2**63 - 1, description="Random seed; the same seed and settings give the same video.")
    steps: int = Field(25, ge=1, le=200, description="DDIM denoising steps.")
    guidance_scale: float = Field(
        8.0, ge=0.0, le=50.0, description="Classifier-free guidance scale (the AnyI2V reference uses 8)."
    )
    timestep_spacing: Literal["leading", "linspace"] = Field(
        "leading",
        description=(
            "Where the DDIM steps fall on the 1000-step schedule: leading with offset 1 as the authors run it"
            " (961, 921, ..., 1 for 25 steps), or linspace from 999 to 0 (999, 957, 916, ...)."
        ),
    )


class MethodSettings(DocumentModel):
    """The AnyI2V knobs (paper defaults). See the module docstring for the ablation table."""

    # 1. Inversion of the condition image.
    inversion_timestep: int = Field(
        201, ge=1, le=999, description="DDIM inversion runs on the 1000-step schedule up to this timestep."
    )

    # 2. Structure-preserved injection into the first frame.
    structure_injection: bool = Field(True, description="Inject the inverted condition's features into frame 0.")
    injection_steps: int = Field(4, ge=0, le=200, description="Inject during denoising steps 0 .. n-1.")
    inject_residual: bool = Field(True, description="Inject the ResNet residual hidden states.")
    residual_adain: bool = Field(True, description="Debias injected residual states with patch-wise AdaIN.")
    adain_patch_size: int = Field(4, ge=1, le=64, description="Patch size (latent pixels) of the AdaIN.")
    inject_query: bool = Field(True, description="Inject the self-attention queries.")
    kv_copy: bool = Field(True, description="Copy frame 0's keys and values to every frame while injecting.")
    kv_copy_halves: Literal["conditional", "both"] = Field(
        "conditional",
        description=(
            "Which halves of the guidance batch get frame 0's keys and values: the conditional one, as the"
            " authors do, or both."
        ),
    )
    injection_halves: Literal["conditional", "both"] = Field(
        "conditional",
        description=(
            "Which halves of the guidance batch get the injected queries and residual states: the conditional"
            " one, as the authors do, or both (ours: guidance then amplifies the prompt, not the condition's look)."
        ),
    )
    query_layers: LayerList = Field(
        DEFAULT_QUERY_LAYERS, description="Self-attention layers whose queries are injected."
    )
    residual_layers: LayerList = Field(
        DEFAULT_RESIDUAL_LAYERS, description="ResNet blocks whose residual hidden states are injected."
    )

    # 3. Zero-shot trajectory control by latent optimization.
    trajectory_control: bool = Field(True, description="Optimize the latent so each box's content follows its track.")
    optimization_steps: int = Field(
        6, ge=0, le=200, description="Optimize before denoising steps 0 .. n-1 (t' >= 20 of 25 in the paper)."
    )
    optimization_iterations: int = Field(5, ge=1, le=100, description="Optimizer iterations per optimized step.")
    learning_rate: float = Field(0.01, gt=0.0, le=10.0, description="AdamW learning rate on the latent.")
    fresh_optimizer_each_iteration: bool = Field(
        True,
        description="Create a new AdamW at every iteration (the reference does; steps are then close to lr * sign).",
    )
    update_region: Literal["latent", "boxes"] = Field(
        "latent",
        description=(
            "Where the optimizer may move the latent: everywhere, as the authors do, or only inside each frame's"
            " boxes grown by one latent pixel (ours: the background keeps what the prompt painted there)."
        ),
    )
    optimize_features: Literal["query", "residual"] = Field(
        "query", description="Align self-attention queries (paper) or residual hidden states (ablation)."
    )
    optimized_layers: LayerList = Field(
        DEFAULT_OPTIMIZED_LAYERS,
        min_length=1,
        description="Layers whose features the trajectory loss aligns.",
    )
    pca_components: int | None = Field(
        64,
        ge=1,
        le=4096,
        description="Project features on this many principal components; null disables PCA.",
    )
    pca_solver: Literal["randomized", "exact"] = Field(
        "randomized",
        description=(
            "Fit the principal components by seeded subspace iteration (randomized: a third of the time on a"
            " GPU, loss within 3e-4 of exact) or by a full eigendecomposition of the covariance (exact)."
        ),
    )

    # 4. Semantic masks.
    mask: Literal["dynamic", "static", "none"] = Field(
        "dynamic", description="Semantic mask per frame (dynamic), frame 0's mask for all (static), or none."
    )

    # 5. SG-I2V options.
    gaussian_weighting: bool = Field(False, description="Weight the loss with a Gaussian over each box (SG-I2V).")
    high_frequency_filter: bool = Field(
        False,
        description="Keep the optimized latent's low frequencies and the original's high ones (SG-I2V).",
    )
    filter_cutoff: float = Field(0.5, gt=0.0, le=1.0, description="Butterworth low-pass cut-off (normalized).")
    filter_order: int = Field(4, ge=1, le=16, description="Butterworth filter order.")
