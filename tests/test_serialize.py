"""JSON round trip (exact), save/load with .json + .npz, atomic writes, corrupt files refused."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import convc
from convc.errors import ConvcError
from convc.printer import to_dot, to_text
from convc.serialize import from_json, to_json


def mixed_net() -> convc.Network:
    net = convc.Network("mixed", seed=1)
    x = net.input((1, 3, 12, 12))
    a = net.conv2d(x, 6, 3, padding=((2, 0), (0, 2)), dilation=1, groups=3, bias=False, name="a")
    a = net.batch_norm(a, eps=1e-3, name="bn")
    b = net.leaky_relu(net.conv2d(x, 6, 1, name="b"), 0.2)
    y = net.concat([a, b], name="cat")
    y = net.lrn(y, 3, 2e-4, 0.5, 1.5)
    y = net.avg_pool2d(y, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    net.output(net.softmax(net.linear(net.flatten(y), 5, name="fc")))
    return net


def test_json_round_trip_reproduces_the_graph_exactly() -> None:
    g = mixed_net().graph
    text = to_json(g)
    g2 = from_json(text, dict(g.params))
    g2.verify()
    assert to_json(g2) == text
    assert [(n.name, n.op, n.inputs, n.attrs, n.type) for n in g2.nodes()] == \
        [(n.name, n.op, n.inputs, n.attrs, n.type) for n in g.nodes()]
    assert to_text(g2) == to_text(g)


def test_save_and_load(tmp_path: Path) -> None:
    net = mixed_net()
    net.save(str(tmp_path / "m"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.npz"]  # no temporary left behind
    g = convc.load(tmp_path / "m")
    for k, v in net.graph.params.items():
        np.testing.assert_array_equal(g.params[k], v)
    assert to_json(g) == to_json(net.graph)


def test_corrupt_files_are_refused(tmp_path: Path) -> None:
    mixed_net().save(str(tmp_path / "m"))
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(ConvcError, match="corrupt JSON"):
        convc.load(tmp_path / "m")
    with pytest.raises(ConvcError, match="cannot load graph"):
        convc.load(tmp_path / "missing")


def test_printer_line_format() -> None:
    net = convc.Network("p")
    x = net.input((1, 3, 224, 224))
    net.output(net.conv2d(x, 64, 7, stride=2, padding=3, bias=False, name="conv1"))
    lines = to_text(net.graph).splitlines()
    assert lines[2] == ("  %conv1 = conv2d(%x, %conv1.weight) {kernel=(7,7), stride=(2,2), "
                        "padding=((3,3),(3,3))} : f32[1,64,112,112]")
    dot = to_dot(net.graph)
    assert dot.startswith('digraph "p" {') and '"x" -> "conv1";' in dot


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_atomic_write_honours_the_umask(tmp_path: Path, umask: int) -> None:
    from convc.serialize import atomic_write

    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "new.json", b"{}")
        with open(tmp_path / "plain.json", "wb") as f:  # what a plain write leaves, the reference
            f.write(b"{}")
    finally:
        os.umask(old)
    mode = (tmp_path / "new.json").stat().st_mode & 0o777
    assert mode == (tmp_path / "plain.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_write_keeps_an_existing_files_mode(tmp_path: Path) -> None:
    from convc.serialize import atomic_write

    target = tmp_path / "plan.json"
    target.write_bytes(b"old")
    target.chmod(0o640)
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and target.stat().st_mode & 0o777 == 0o640
