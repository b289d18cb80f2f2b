"""The GPU side: model loading, the AnyI2V pipeline, the job queue and the ZeroMQ server.

Imports ``anyi2v.shared`` only. This module imports nothing heavy: torch and diffusers load inside
the pipeline modules.
"""
