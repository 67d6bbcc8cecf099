"""HRNet for top-down keypoint heatmaps (Sun et al., "Deep High-Resolution Representation Learning for Human Pose
Estimation", CVPR 2019), laid out module for module like the official `pose_hrnet.py`, so that official and mmpose
checkpoints load with strict key and shape checks.

The stem (two stride-2 3x3 convs) and `layer1` (4 Bottlenecks, 256 channels) are fixed; stages 2-4 keep 2, 3 and 4
parallel branches of widths W, 2W, 4W, 8W, repeatedly exchanging information (fuse layers), and the last module
returns only the highest-resolution branch, on which a 1x1 conv predicts one heatmap per joint at 1/4 resolution.
`width=32` and `width=48` are HRNet-W32 and -W48 (28.5 M and 63.6 M parameters).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fallwatch.errors import FallwatchError
from fallwatch.pose.scores import ScoreCalibration

log = logging.getLogger(__name__)

BN_MOMENTUM = 0.1


class CheckpointError(FallwatchError):
    """A checkpoint that does not fit the model; the message names the first mismatching key."""


@dataclass(frozen=True)
class HRNetSpec:
    """Architecture of one HRNet; the defaults of the official COCO configs except for `width`."""

    width: int = 32
    num_joints: int = 17
    modules: tuple[int, ...] = (1, 4, 3)  # NUM_MODULES of stages 2, 3, 4 (fewer entries: fewer stages)
    blocks: int = 4  # BasicBlocks per branch in every module
    final_kernel: int = 1
    stem_width: int = 64  # channels of the two stride-2 stem convs
    layer1_blocks: int = 4  # Bottlenecks in layer1 (output 4 x stem_width channels)

    def __post_init__(self) -> None:
        if not 1 <= len(self.modules) <= 3 or min(self.modules) < 1 or self.blocks < 1 or self.layer1_blocks < 1:
            raise FallwatchError(f"not a valid HRNet: {self}")

    def branch_widths(self, stage: int) -> list[int]:
        return [self.width * 2**i for i in range(stage)]  # stage 2 -> [W, 2W], ..., stage 4 -> 4 branches

    def to_dict(self) -> dict:
        return {"width": self.width, "num_joints": self.num_joints, "modules": list(self.modules),
                "blocks": self.blocks, "final_kernel": self.final_kernel, "stem_width": self.stem_width,
                "layer1_blocks": self.layer1_blocks}

    @classmethod
    def from_dict(cls, d: dict) -> HRNetSpec:
        return cls(**{**d, "modules": tuple(d.get("modules", (1, 4, 3)))})


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout, momentum=BN_MOMENTUM),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks, then every output branch sums every input branch (resampled)."""

    def __init__(self, widths: list[int], blocks: int, multi_scale_output: bool):
        super().__init__()
        self.num_branches = len(widths)
        self.branches = nn.ModuleList(
            nn.Sequential(*(BasicBlock(w, w) for _ in range(blocks))) for w in widths
        )
        self.fuse_layers = self._fuse_layers(widths, multi_scale_output) if self.num_branches > 1 else None
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _fuse_layers(widths: list[int], multi_scale_output: bool) -> nn.ModuleList:
        outputs = len(widths) if multi_scale_output else 1
        fuse = nn.ModuleList()
        for i in range(outputs):
            row = nn.ModuleList()
            for j in range(len(widths)):
                if j > i:  # lower resolution -> 1x1 conv, then nearest upsampling (no weights)
                    row.append(nn.Sequential(
                        nn.Conv2d(widths[j], widths[i], 1, 1, 0, bias=False),
                        nn.BatchNorm2d(widths[i], momentum=BN_MOMENTUM),
                        nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                    ))
                elif j == i:
                    row.append(None)
                else:  # higher resolution -> a chain of stride-2 3x3 convs, ReLU after all but the last
                    steps = [_conv_bn(widths[j], widths[j], 3, 2, relu=True) for _ in range(i - j - 1)]
                    steps.append(_conv_bn(widths[j], widths[i], 3, 2, relu=False))
                    row.append(nn.Sequential(*steps))
            fuse.append(row)
        return fuse

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        x = [branch(xi) for branch, xi in zip(self.branches, x, strict=True)]
        if self.fuse_layers is None:
            return x
        out = []
        for i, row in enumerate(self.fuse_layers):  # summed in the official order (j = 0, 1, ...)
            y = x[0] if i == 0 else row[0](x[0])
            for j in range(1, self.num_branches):
                y = y + (x[j] if j == i else row[j](x[j]))
            out.append(self.relu(y))
        return out


class HRNet(nn.Module):
    """`forward(images (N, 3, H, W)) -> heatmaps (N, joints, H/4, W/4)`."""

    def __init__(self, spec: HRNetSpec = HRNetSpec()):  # noqa: B008 - frozen dataclass
        super().__init__()
        self.spec = spec
        c = spec.stem_width
        self.conv1 = nn.Conv2d(3, c, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(c, c, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        downsample = nn.Sequential(nn.Conv2d(c, 4 * c, 1, bias=False), nn.BatchNorm2d(4 * c, momentum=BN_MOMENTUM))
        self.layer1 = nn.Sequential(
            Bottleneck(c, c, 1, downsample), *(Bottleneck(4 * c, c) for _ in range(spec.layer1_blocks - 1))
        )

        previous = [4 * c]
        self.stages = tuple(range(2, 2 + len(spec.modules)))
        for stage, n_modules in zip(self.stages, spec.modules, strict=True):
            widths = spec.branch_widths(stage)
            setattr(self, f"transition{stage - 1}", self._transition(previous, widths))
            last = stage == self.stages[-1]
            setattr(self, f"stage{stage}", nn.Sequential(*(
                HighResolutionModule(widths, spec.blocks, multi_scale_output=not (last and m == n_modules - 1))
                for m in range(n_modules)
            )))
            previous = widths
        self.final_layer = nn.Conv2d(spec.width, spec.num_joints, spec.final_kernel, 1, spec.final_kernel // 2)

    @staticmethod
    def _transition(previous: list[int], widths: list[int]) -> nn.ModuleList:
        layers = nn.ModuleList()
        for i, w in enumerate(widths):
            if i < len(previous):
                layers.append(_conv_bn(previous[i], w, 3, 1, relu=True) if previous[i] != w else None)
            else:  # a new, lower-resolution branch from the lowest existing one
                layers.append(nn.Sequential(*(
                    _conv_bn(previous[-1], w if k == i - len(previous) else previous[-1], 3, 2, relu=True)
                    for k in range(i + 1 - len(previous))
                )))
        return layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        y = [self.layer1(x)]
        for stage in self.stages:
            transition = getattr(self, f"transition{stage - 1}")
            x_list = [t(y[-1]) if t is not None else y[i] for i, t in enumerate(transition)]
            y = getattr(self, f"stage{stage}")(x_list)
        return self.final_layer(y[0])


_IGNORED = ("data_preprocessor.mean", "data_preprocessor.std")
_HEAD_PREFIXES = ("keypoint_head.final_layer.", "head.final_layer.")


def canonical_state_dict(checkpoint) -> OrderedDict:
    """Official key names from an official, mmpose 0.x / 1.x or multi-GPU (`module.`) checkpoint."""
    sd = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    out = OrderedDict()
    for key, value in sd.items():
        if key.startswith("module."):
            key = key[len("module."):]
        if key in _IGNORED:
            continue
        for prefix in _HEAD_PREFIXES:
            if key.startswith(prefix):
                key = "final_layer." + key[len(prefix):]
        if key.startswith("backbone."):
            key = key[len("backbone."):]
        out[key] = value
    return out


def load_checkpoint(model: HRNet, checkpoint) -> None:
    """Load strictly; a missing, unexpected or wrongly shaped key raises `CheckpointError` naming the first one.
    `num_batches_tracked` buffers may be absent from the checkpoint."""
    if isinstance(checkpoint, str | Path):
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=True)
    sd = canonical_state_dict(checkpoint)
    own = model.state_dict()
    for key, value in own.items():
        if key not in sd:
            if key.endswith("num_batches_tracked"):
                sd[key] = value.clone()
                continue
            raise CheckpointError(f"checkpoint has no {key!r} (shape {list(value.shape)}): not this HRNet")
        if tuple(sd[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"checkpoint {key!r} has shape {list(sd[key].shape)}, the model expects {list(value.shape)}"
            )
    unexpected = [k for k in sd if k not in own]
    if unexpected:
        raise CheckpointError(f"checkpoint has an unexpected key {unexpected[0]!r}: not this HRNet")
    model.load_state_dict(sd, strict=True)


def count_macs(model: nn.Module, input_size: tuple[int, int]) -> int:
    """Multiply-accumulates of the convolutions for one (width, height) input."""
    total = 0

    def hook(m: nn.Conv2d, _inp, out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        model(torch.zeros(1, 3, input_size[1], input_size[0]))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total


# mmpose's ImageNet statistics for RGB input in 0-255, which the official and mmpose checkpoints were trained with.
RGB_MEAN = (123.675, 116.28, 103.53)
RGB_STD = (58.395, 57.12, 57.375)


class CropsToHeatmaps(nn.Module):
    """uint8 RGB crops (N, H, W, 3) -> heatmaps (N, K, H/4, W/4): the normalisation, the network and its optional
    sigmoid as one module, so that ONNX Runtime can run the whole of it as one graph."""

    def __init__(self, net: HRNet, sigmoid: bool):
        super().__init__()
        self.net, self.sigmoid = net, sigmoid
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(RGB_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        heatmaps = self.net((crops.permute(0, 3, 1, 2).float() - self.mean) / self.std).float()
        return torch.sigmoid(heatmaps) if self.sigmoid else heatmaps


def onnx_bytes(module: nn.Module, input_size: tuple[int, int]) -> bytes:
    """`module` (uint8 crops of `input_size` (w, h) in, heatmaps out) as an ONNX graph with a free batch size, in
    memory. torch's TorchScript-based exporter: a fraction of a second for our students, no extra package."""
    import io
    import warnings

    buffer = io.BytesIO()
    example = torch.zeros(1, input_size[1], input_size[0], 3, dtype=torch.uint8)
    with torch.inference_mode(False), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice; the graph is checked by tests
        torch.onnx.export(module, (example,), buffer, input_names=["crops"], output_names=["heatmaps"],
                          dynamic_axes={"crops": {0: "batch"}, "heatmaps": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    return buffer.getvalue()


class HRNetHeatmapModel:
    """`model(crops (N, H, W, 3) uint8 RGB) -> heatmaps (N, K, H/4, W/4)`, preprocessing as the checkpoints expect.
    Heatmap pixel i maps to input pixel i x stride (mmpose's codec convention), hence no offset.
    A checkpoint written by `fallwatch train pose` carries its own architecture and input size, which then
    override `spec` and `input_size`, and may ask for a sigmoid on the output (its maps are trained as logits).

    `runtime`: `torch`, or `onnxruntime` — the same module exported to ONNX at load and run by ONNX Runtime, which
    on a CPU runs our students 1.5-2.5x as fast as torch's eager kernels (docs/benchmarks.md) with the same heatmaps to
    ~1e-5; `auto` is onnxruntime on the CPU (torch where the export fails, with a warning) and torch on a GPU."""

    heatmap_offset = 0.0

    def __init__(self, path: Path | None, spec: HRNetSpec, input_size: tuple[int, int], device: str = "cpu",
                 runtime: str = "auto", threads: int = 0):
        self.device = torch.device(device)
        checkpoint = None
        if path is not None:
            try:
                checkpoint = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise CheckpointError(f"cannot read HRNet checkpoint {path}: {exc}") from None
        self.sigmoid = False
        self.score_calibration: ScoreCalibration | None = None  # raw scores -> the reference model's scale
        if isinstance(checkpoint, dict) and "spec" in checkpoint and "input_size" in checkpoint:
            spec = HRNetSpec.from_dict(checkpoint["spec"])
            input_size = tuple(checkpoint["input_size"])
            self.sigmoid = checkpoint.get("activation") == "sigmoid"
            if checkpoint.get("score_calibration"):
                self.score_calibration = ScoreCalibration.from_dict(checkpoint["score_calibration"])
        self.net = HRNet(spec)
        if checkpoint is not None:
            load_checkpoint(self.net, checkpoint)
        self.net.eval()
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.graph = CropsToHeatmaps(self.net, self.sigmoid).eval().to(self.device)
        self.session = self._onnx_session(runtime, threads)
        self.runtime = "onnxruntime" if self.session is not None else "torch"

    def _onnx_session(self, runtime: str, threads: int):
        if runtime not in ("auto", "torch", "onnxruntime"):
            raise FallwatchError(f"unknown HRNet runtime {runtime!r} (auto, torch or onnxruntime)")
        if runtime == "torch" or (runtime == "auto" and self.device.type != "cpu"):
            return None
        from fallwatch.pose.onnx_heatmap import onnx_session

        try:
            return onnx_session(onnx_bytes(self.graph.cpu(), self.input_size), str(self.device), threads)
        except Exception as exc:
            if runtime == "onnxruntime":
                raise FallwatchError(f"pose.hrnet_runtime=onnxruntime: cannot export the HRNet to ONNX "
                                     f"({type(exc).__name__}: {exc}); use pose.hrnet_runtime=torch") from None
            log.warning("HRNet keypoints through torch (slower): its ONNX export failed (%s: %s)",
                        type(exc).__name__, exc)
            return None
        finally:
            self.graph.to(self.device)

    @torch.inference_mode()
    def __call__(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, self.net.spec.num_joints, 1, 1), np.float32)
        crops = np.ascontiguousarray(crops, np.uint8)
        if self.session is not None:
            return self.session.run(["heatmaps"], {"crops": crops})[0]
        return self.graph(torch.from_numpy(crops).to(self.device)).cpu().numpy()
