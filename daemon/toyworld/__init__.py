"""The toy world: procedural scenes of shaded primitives, rendered in torch, that the embedded default
model is trained on and evaluated with."""
