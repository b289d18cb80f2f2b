"""The GPU side: model loading, the AnyI2V pipeline, the job queue and the ZeroMQ server.

Imports ``anyi2v.shared`` only. This module imports nothing heavy: torch and diffusers load inside
the pipeline modules.
"""

TOY_WORLD = "toy-world"  # the embedded default model (``anyi2v.daemon.toyworld.WEIGHTS``), used when none is named
TINY_RANDOM = "tiny-random"  # a seeded random tiny model: plumbing only, its videos are noise
SD15_RANDOM = "sd15-random"  # seeded random weights at SD 1.5 + AnimateDiff sizes: for speed measurements
DEFAULT_ADDRESS = "tcp://127.0.0.1:5557"  # where `anyi2v daemon` listens and clients connect by default
