"""ONNX's backend test suite (the selection of test_onnx_backend_suite.py) on convc's Triton backend: the
node tests and the PyTorch models (the light zoo models are skipped on every backend: see ILL_CONDITIONED).

Without CUDA it runs under the Triton interpreter (tests/conftest.py sets TRITON_INTERPRET=1 before any
kernel is decorated); on a CUDA machine without the interpreter tests/gpu covers the Triton backend, and
CONVC_ONNX_SUITE_BACKEND=triton runs the whole suite through test_onnx_backend_suite.py.
"""
from __future__ import annotations

import os

import pytest

pytest.importorskip("onnx")
pytest.importorskip("triton")

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("the Triton ONNX suite runs here under TRITON_INTERPRET=1", allow_module_level=True)

# pytest's default import mode puts this folder on sys.path.
from test_onnx_backend_suite import suite_test_cases

globals().update({name: case for name, case in suite_test_cases("triton", __name__).items()
                  if name != "OnnxBackendRealModelTest"})
