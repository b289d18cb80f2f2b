"""AnyI2V on diffusers AnimateDiff: loading, the method's controls, inversion, sampling, video output.

Everything here imports torch and diffusers; ``anyi2v.daemon`` itself stays light.
"""
