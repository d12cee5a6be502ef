"""torchvision's CNNs by name in convc's catalog: built through from_torch with torchvision's state_dict
keys, listed by `convc models`, summarized by `convc summary`, and a clear error without torchvision."""
from __future__ import annotations

import json
import sys

import pytest

import convc.models
from convc.cli import main
from convc.errors import OptionError
from convc.summary import summarize

torchvision = pytest.importorskip("torchvision")


def test_every_torchvision_cnn_is_named_once() -> None:
    from torchvision import models as tv

    cnns = {n for n in tv.list_models(module=tv) if not n.startswith(("vit_", "swin_", "maxvit_"))}
    assert cnns <= set(convc.models.names(imported=True))
    imported = {n for n in convc.models.names(imported=True) if convc.models.info(n).imported}
    assert not imported & set(convc.models.names())
    own = {"alexnet", "googlenet", *(f"resnet{d}" for d in (18, 34, 50, 101, 152)),
           *(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn"))}
    assert len(cnns) == 68 and cnns - imported == own and len(imported) == 53


def test_a_torchvision_model_builds_with_its_state_dict_keys() -> None:
    net = convc.models.get("shufflenet_v2_x0_5", input_size=32, num_classes=10, batch=2)
    model = torchvision.models.get_model("shufflenet_v2_x0_5", weights=None, num_classes=10)
    expected = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(net.graph.params) == expected
    assert net.graph.inputs[0].type.shape == (2, 3, 32, 32)
    assert summarize(net.graph).total_params == sum(p.numel() for p in model.parameters())


def test_convc_models_lists_them_and_summary_builds_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["efficientnet_b0"]["params"] is None and rows["resnet18"]["params"] == 11_689_512
    assert main(["summary", "mobilenet_v3_small", "--input", "3,64,64", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["total_params"] == 2_542_856


def test_without_torchvision_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(OptionError, match="'efficientnet_b0' is torchvision's: install torchvision"):
        convc.models.get("efficientnet_b0")
