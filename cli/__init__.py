"""AnyI2V Studio: animate meshes, point clouds and structural images with directed motion.

The packages live under this root: ``anyi2v.shared`` (the Shot contract), ``anyi2v.render``
(geometry to condition images), ``anyi2v.daemon`` (the GPU side) and ``anyi2v.desktop`` (the app).
"""

__version__ = "0.1.0"
