"""torchvision 0.29's 68 convolutional classification models (every one but ViT, Swin and MaxViT, which
are attention networks), with the input each test uses and the family each belongs to.

Inputs: the smallest square size each model's forward accepts (measured with torch; most accept 1x1),
but at least 32x32, so a padded 3x3 window reads more than its centre tap; AlexNet needs 63, Inception v3 75.
"""
from __future__ import annotations

import pytest

torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed (make install adds it)")
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torchvision import models as tv_models  # noqa: E402

from torch_zoo import randomize_batch_norm  # noqa: E402  (tests/ is on sys.path: pytest's rootdir conftest)

ATTENTION_PREFIXES = ("vit_", "swin_", "maxvit_")
SMALLEST_INPUT = {"alexnet": 63, "inception_v3": 75}
FLOOR = 32

# One representative per family (the smallest) takes the costly paths in CI: ONNX in float64,
# torch.compile and Triton under the interpreter; `make test-zoo` runs every model on every path.
FAMILY_REPRESENTATIVES = {
    "alexnet": "alexnet", "convnext": "convnext_tiny", "densenet": "densenet121",
    "efficientnet": "efficientnet_b0", "efficientnet_v2": "efficientnet_v2_s", "googlenet": "googlenet",
    "inception": "inception_v3", "mnasnet": "mnasnet0_5", "mobilenet_v2": "mobilenet_v2",
    "mobilenet_v3": "mobilenet_v3_small", "regnet_x": "regnet_x_400mf", "regnet_y": "regnet_y_400mf",
    "resnet": "resnet18", "resnext": "resnext50_32x4d", "shufflenet": "shufflenet_v2_x0_5",
    "squeezenet": "squeezenet1_1", "vgg": "vgg11", "wide_resnet": "wide_resnet50_2",
}
# Every family representative runs on Triton under the interpreter in CI: measured 2026-12-01 on the shared
# 2-core machine (load ~3.5, one BLAS thread, float32, batch 1, smallest input), 0.5 s (squeezenet1_1) to
# 10 s (resnext50_32x4d) of CPU each, 69 s for all 18 (98 s wall; build, import, compile, run, reference).
TRITON_CI = set(FAMILY_REPRESENTATIVES.values())
# Too large for a CI worker: 644M parameters, ~8 GB with the float64 reference. `make test-zoo` runs it.
HUGE = {"regnet_y_128gf"}


def model_names() -> list[str]:
    return [n for n in tv_models.list_models(module=tv_models) if not n.startswith(ATTENTION_PREFIXES)]


def input_size(name: str) -> int:
    return max(SMALLEST_INPUT.get(name, 1), FLOOR)


def onnx_input_size(name: str) -> int:
    """torch.onnx.export writes adaptive average pooling only where the output size divides the input's:
    AlexNet and VGG export at 224 (their 6x6 and 7x7 feature maps), the others at input_size."""
    return 224 if name == "alexnet" or name.startswith("vgg") else input_size(name)


def build(name: str, dtype: torch.dtype = torch.float32, batch: int = 1, size: int | None = None
          ) -> tuple[nn.Module, torch.Tensor]:
    """The model without weights (seeded), in eval mode with random BN statistics, and an input."""
    torch.manual_seed(0)
    options = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    model = tv_models.get_model(name, weights=None, **options).eval()
    randomize_batch_norm(model)
    model = model.to(dtype)
    s = size or input_size(name)
    return model, torch.randn(batch, 3, s, s, dtype=dtype, generator=torch.Generator().manual_seed(1))


def state_dict_keys(model: nn.Module) -> set[str]:
    return {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
