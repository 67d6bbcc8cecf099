"""The YOLO network without ultralytics' predictor: a torch forward, or the same graph compiled by OpenVINO.

Both take the letterboxed (1, 3, H, W) float32 tensor and return (6, N) float32 rows: box centre x, y, width,
height (input pixels), the person score, and the best score of the other 79 classes — enough to reproduce
ultralytics' rule that a box is a person only where person is its best class. The OpenVINO graph is converted from
the torch model once per weights file, input shape and OpenVINO version, into the user cache, and reused after.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from fallwatch.errors import FallwatchError
from fallwatch.weights import ResolvedWeights, cache_dir

log = logging.getLogger(__name__)

PERSON_CLASS = 0


def load_yolo(weights: ResolvedWeights):
    """The ultralytics model for a local weights file, checked to have 'person' as class 0."""
    from ultralytics import YOLO  # imported here: it is slow to import and only this stage needs it

    try:
        yolo = YOLO(str(weights.path), task="detect")
    except Exception as exc:  # ultralytics raises many types for a bad file
        raise FallwatchError(f"cannot load detector weights {weights.path}: {exc}") from None
    names = getattr(yolo, "names", None) or {}
    if names and str(names.get(PERSON_CLASS, "")).lower() != "person":
        raise FallwatchError(f"{weights.path} has no 'person' class 0 (class 0 is {names.get(PERSON_CLASS)!r})")
    return yolo


def load_torch_network(weights: ResolvedWeights):
    """The ultralytics checkpoint's network, fused, in eval mode, wrapped to return the six person rows."""
    import torch

    yolo = load_yolo(weights)
    if not isinstance(yolo.model, torch.nn.Module):
        raise FallwatchError(f"{weights.path} is not a torch checkpoint: use detect.runtime=predict for it")
    net = yolo.model.float().eval().fuse(verbose=False)

    class PersonRows(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            y = self.net(x)
            y = y[0] if isinstance(y, (tuple, list)) else y  # (1, 4 + classes, N)
            others = y[:, 5:].amax(1, keepdim=True)
            return torch.cat((y[:, :5], others), 1)[0]

    return PersonRows(net).eval()


class TorchRuntime:
    """Direct forward in torch (FP16 on CUDA when asked): no per-call predictor setup."""

    name = "torch"

    def __init__(self, weights: ResolvedWeights, device: str, half: bool):
        import torch

        self.torch = torch
        self.device = device
        self.half = half
        self.net = load_torch_network(weights).to(device)
        if half:
            self.net = self.net.half()

    def prepare(self, shape: tuple[int, int]) -> None:
        """Nothing to compile for torch."""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        with torch.inference_mode():
            t = torch.from_numpy(x).to(self.device)
            out = self.net(t.half() if self.half else t)
        return out.float().cpu().numpy()


class OpenVinoRuntime:
    """The same network through OpenVINO on the CPU; one compiled model per input shape (a source has one)."""

    name = "openvino"

    def __init__(self, weights: ResolvedWeights, threads: int = 0):
        try:
            import openvino as ov
        except ImportError:
            raise FallwatchError("detect.runtime=openvino needs the openvino package (pip install openvino), "
                                 "or use detect.runtime=torch") from None
        self.ov = ov
        self.core = ov.Core()
        self.weights = weights
        self.threads = threads
        self.compiled: dict[tuple[int, int], object] = {}
        self._torch_net = None

    def cached_model(self, shape: tuple[int, int]):
        """The converted graph for `shape` (H, W): its file in the user cache, converted now if it is not there
        (or the graph itself, where the cache cannot be written)."""
        version = self.ov.get_version().split("-")[0]
        key = f"{self.weights.path.stem}-{self.weights.sha256[:16]}-{shape[0]}x{shape[1]}-openvino-{version}"
        target = cache_dir() / "compiled" / key / "model.xml"
        if target.exists() and target.with_suffix(".bin").exists():
            return target
        model = self._convert(shape)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:  # never a half-written cache entry
                staged = Path(tmp) / "model.xml"
                self.ov.save_model(model, str(staged), compress_to_fp16=False)
                os.replace(staged.with_suffix(".bin"), target.with_suffix(".bin"))
                os.replace(staged, target)
        except OSError as exc:
            log.warning("cannot cache the OpenVINO detector in %s (%s): converting on every start", target.parent, exc)
            return model
        return target

    def _convert(self, shape: tuple[int, int]):
        import torch

        if self._torch_net is None:
            self._torch_net = load_torch_network(self.weights)
        log.info("converting %s to OpenVINO for %dx%d input (once; cached)", self.weights.path.name, shape[1], shape[0])
        example = torch.zeros(1, 3, *shape)
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about the head's shape checks: the graph is per shape
            self._torch_net(example)  # the head caches its anchors for this shape: the traced graph keeps them
            return self.ov.convert_model(self._torch_net, example_input=example)

    def prepare(self, shape: tuple[int, int]) -> None:
        if shape in self.compiled:
            return
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            model = self.cached_model(shape)
            self.compiled[shape] = self.core.compile_model(model if not isinstance(model, Path) else str(model),
                                                           "CPU", config)
        except FallwatchError:
            raise
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise FallwatchError(f"OpenVINO cannot compile {self.weights.path.name}: {first}; "
                                 "use detect.runtime=torch") from None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        shape = (x.shape[2], x.shape[3])
        self.prepare(shape)
        return np.asarray(self.compiled[shape](x)[0], np.float32)
