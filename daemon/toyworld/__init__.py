"""The toy world: procedural scenes of shaded primitives, rendered in torch, that the embedded default
model is trained on and evaluated with."""

from pathlib import Path

WEIGHTS = Path(__file__).resolve().with_name("weights")  # the embedded default model (fp16, diffusers layout)
