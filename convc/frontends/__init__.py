"""Frontends: PyTorch and ONNX importers."""
