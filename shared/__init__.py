"""The contract between the desktop, the CLI and the daemon: the Shot document and its rules.

Imports nothing of ours and nothing heavy (no torch, Qt, zmq or Open3D).
"""
