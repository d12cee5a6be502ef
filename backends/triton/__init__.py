"""Triton GPU backend (placeholder until its kernels land)."""
