"""Split-K on a CUDA device (marker `gpu`; skipped without one): layers whose tiles leave the GPU under
one wave, where split_k.py now stays within one wave (GoogLeNet's inception4a 3x3 at batch 64 took 2
splits, 392 CTAs in 1.48 waves of 128x128 tiles; now 1; ResNet-50's layer3 / layer4 3x3 at batch 1 split
9 and 15 ways in fp16), each against torch in float64 on the same GPU."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import convc
from convc.backends.triton import split_k
from convc.dsl import Network
from convc.numerics import budget, rel_err

pytestmark = pytest.mark.gpu

# (input shape, out channels): 3x3, padding 1, stride 1.
LAYERS = {"resnet50.layer3.conv2_b1": ((1, 256, 14, 14), 256),
          "resnet50.layer4.conv2_b1": ((1, 512, 7, 7), 512),
          "googlenet.inception4a.branch2.1_b64": ((64, 96, 14, 14), 208)}


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("name", LAYERS)
def test_split_layers_match_torch_and_fit_one_wave(name: str, dtype: str) -> None:
    shape, out = LAYERS[name]
    net = Network("split", seed=3)
    net.output(net.conv2d(net.input(shape), out, 3, padding=1, name="conv"))
    model = convc.compile(net, backend="triton", dtype=dtype, device="cuda", opt_level=0, autotune=False)
    [main] = [launch for launch in model.launches if launch.name == "conv_implicit_gemm_kernel"]
    split = main.meta.get("SPLIT_K", 1)
    c_g = shape[1]
    wave = split_k.SMS * split_k.resident_ctas(main.config, dtype, ragged=c_g % main.config["BLOCK_K"] != 0)
    assert split == 1 or math.prod(main.grid) <= wave, (main.grid, main.config)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    params = {k: torch.from_numpy(np.asarray(v, np.float64)) for k, v in net.state_dict().items()}
    ref = F.conv2d(torch.from_numpy(x.astype(np.float64)), params["conv.weight"], params["conv.bias"],
                   padding=1)
    assert rel_err(model.run(x)[0], ref.numpy()) <= budget(dtype)
