"""The light zoo models of ONNX's backend test suite on convc's Triton backend, under the interpreter (see
test_onnx_backend_suite_triton.py). VGG-19 takes about a minute under the interpreter, more than CI's
budget for this file: it runs with CONVC_ONNX_SUITE_BACKEND=triton TRITON_INTERPRET=1 through
test_onnx_backend_suite.py, and passes there.
"""
from __future__ import annotations

import os
import unittest

import pytest

pytest.importorskip("onnx")
pytest.importorskip("triton")

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("the Triton ONNX suite runs here under TRITON_INTERPRET=1", allow_module_level=True)

# pytest's default import mode puts this folder on sys.path.
from test_onnx_backend_suite import suite_test_cases

OnnxBackendRealModelTest = suite_test_cases("triton", __name__)["OnnxBackendRealModelTest"]
OnnxBackendRealModelTest.test_vgg19_cpu = unittest.skip(  # type: ignore[method-assign]
    "about a minute under the Triton interpreter (CI time); runs with CONVC_ONNX_SUITE_BACKEND=triton"
)(OnnxBackendRealModelTest.test_vgg19_cpu)
