"""Helpers every layer shares and none owns: atomic I/O, content hashes, provenance, the torch
device/dtype resolver, the one Hugging Face checkpoint writer, ranks and Spearman.

Nothing here imports another demix package except :mod:`demix.errors`.
"""
