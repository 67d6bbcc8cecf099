"""ONNX heatmap models through onnxruntime, e.g. Google MoveNet SinglePose (Thunder 256x256, Lightning 192x192),
whose `heatmaps` output (sigmoid, stride 4) is exposed in the files fallwatch uses.

MoveNet's graph is exported with batch 1 and post-processing (centre selection, offsets) behind hard-coded
reshapes. Only the sub-graph from the image to `heatmaps` is kept — it has no reshape — and its batch dimension is
made symbolic, so all the crops of a frame go through one `run` call (results equal batch-1 runs to ~1e-6).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fallwatch.errors import FallwatchError

HEATMAP_OUTPUT = "heatmaps"
FP16_STORAGE_KEY = "fallwatch.float16_storage"  # metadata: initializers stored as float16, to run as float32


def restore_float32(proto) -> int:
    """Cast back to float32 the initializers a bundled file stores as float16 (`scripts/bundle_movenet.py`).

    The file lists them in its metadata, so a model that is float16 by design is never touched. The values were
    float16-exact before packing, so the restored graph equals the original one. Returns how many were restored.
    """
    import onnx
    from onnx import numpy_helper

    listed = next((p.value for p in proto.metadata_props if p.key == FP16_STORAGE_KEY), "")
    names = set(filter(None, listed.split(",")))
    restored = 0
    for index, tensor in enumerate(proto.graph.initializer):
        if tensor.name in names and tensor.data_type == onnx.TensorProto.FLOAT16:
            values = numpy_helper.to_array(tensor).astype(np.float32)
            proto.graph.initializer[index].CopyFrom(numpy_helper.from_array(values, tensor.name))
            restored += 1
    return restored


def onnx_session(model: bytes, device: str = "cpu", threads: int = 0):
    """An ONNX Runtime session for a heatmap model, as every pose model runs: `threads` intra-op threads (0: the
    runtime's choice), no busy-waiting between calls — the detector runs on another thread meanwhile (run.overlap)
    and needs the core — and the CUDA provider first on a GPU where the runtime has it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(device.partition(":")[2] or 0)}))
    return ort.InferenceSession(model, options, providers=providers)


class OnnxHeatmapModel:
    """`model(crops (N, H, W, 3) uint8 RGB) -> heatmaps (N, K, h, w) float32`; `input_size` is (width, height).

    `heatmap_offset`: MoveNet's heatmap cell i covers input pixels [4i, 4i + 4), so its centre is at (i + 0.5) x
    stride; measured against MoveNet's own keypoint output on 100 LSPET crops, decoding at i x stride was 2 px
    (crop pixels) up and left of it, and is unbiased with the half-cell offset.
    """

    heatmap_offset = 0.5

    def __init__(self, path: Path, device: str = "cpu", threads: int = 0):
        import onnx

        try:
            proto = onnx.load(str(path))
        except Exception as exc:
            raise FallwatchError(f"cannot read ONNX model {path}: {exc}") from None
        restore_float32(proto)
        outputs = [o.name for o in proto.graph.output]
        if HEATMAP_OUTPUT not in outputs:
            raise FallwatchError(f"{path} has no {HEATMAP_OUTPUT!r} output (outputs: {', '.join(outputs)})")
        inputs = [i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
        self.input_name = inputs[0].name
        proto = onnx.utils.Extractor(proto).extract_model([self.input_name], [HEATMAP_OUTPUT])
        for value in (*proto.graph.input, *proto.graph.output):
            value.type.tensor_type.shape.dim[0].dim_param = "batch"
        dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
        self.nhwc = dims[-1] == 3
        height, width = (dims[1], dims[2]) if self.nhwc else (dims[2], dims[3])
        self.input_size = (int(width), int(height))
        elem = proto.graph.input[0].type.tensor_type.elem_type
        self.dtype = np.int32 if elem == onnx.TensorProto.INT32 else np.float32
        self.session = onnx_session(proto.SerializeToString(), device, threads)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, 17, 1, 1), np.float32)
        x = crops.astype(self.dtype)
        if not self.nhwc:
            x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        return self.session.run([HEATMAP_OUTPUT], {self.input_name: x})[0].astype(np.float32)
