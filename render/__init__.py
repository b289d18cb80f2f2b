"""Geometry to condition images: meshes and point clouds rendered headless on the CPU.

Imports ``anyi2v.shared`` only; never Qt or torch.
"""
