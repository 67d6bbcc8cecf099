"""HRNet layout against the official key lists, strict loading of official / mmpose checkpoints, forward parity."""

from __future__ import annotations

import json
from collections import OrderedDict

import numpy as np
import pytest
import torch
from conftest import SHARED

from fallwatch.pose.hrnet import CheckpointError, HRNet, HRNetSpec, load_checkpoint

REF = SHARED / "design" / "reference"


@pytest.mark.parametrize("width, params", [(32, 28_536_113), (48, 63_595_745)])
def test_state_dict_matches_official_layout(width, params):
    model = HRNet(HRNetSpec(width=width))
    expected = json.loads((REF / f"hrnet_w{width}_state_dict.json").read_text())
    got = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert got == expected
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.fixture(scope="module")
def tiny():
    sd = torch.load(REF / "hrnet_tiny_state_dict.pt", weights_only=True)
    data = np.load(REF / "hrnet_tiny_forward.npz")
    return sd, data["input"], data["output"]


def _forward(model, x):
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def test_tiny_reference_loads_strictly_and_reproduces_its_output(tiny):
    sd, x, y = tiny
    model = HRNet(HRNetSpec(width=8))
    load_checkpoint(model, sd)
    assert np.abs(_forward(model, x) - y).max() <= 1e-4


@pytest.mark.parametrize("style", ["mmpose1", "mmpose0", "module", "no_batches_tracked"])
def test_other_checkpoint_styles_load(tiny, style):
    sd, x, y = tiny
    if style == "mmpose1":
        ckpt = {"state_dict": OrderedDict(
            (("head." if k.startswith("final_layer") else "backbone.") + k, v) for k, v in sd.items())}
        ckpt["state_dict"]["data_preprocessor.mean"] = torch.zeros(3)
    elif style == "mmpose0":
        ckpt = {"state_dict": OrderedDict(
            (("keypoint_head." if k.startswith("final_layer") else "backbone.") + k, v) for k, v in sd.items())}
    elif style == "module":
        ckpt = OrderedDict(("module." + k, v) for k, v in sd.items())
    else:
        ckpt = OrderedDict((k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
    model = HRNet(HRNetSpec(width=8))
    load_checkpoint(model, ckpt)
    assert np.abs(_forward(model, x) - y).max() <= 1e-4


def test_wrong_architecture_names_the_first_mismatching_key(tiny):
    sd, _, _ = tiny
    with pytest.raises(CheckpointError, match=r"'transition1\.0\.0\.weight' has shape \[8, 256, 3, 3\]"):
        load_checkpoint(HRNet(HRNetSpec(width=32)), sd)
    broken = OrderedDict((k, v) for k, v in sd.items() if k != "stage3.1.branches.0.0.conv1.weight")
    with pytest.raises(CheckpointError, match="stage3.1.branches.0.0.conv1.weight"):
        load_checkpoint(HRNet(HRNetSpec(width=8)), broken)
