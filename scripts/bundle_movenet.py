"""Write the MoveNet ONNX files that ship in `models/`: the same graphs with float32 weights stored as float16.

MoveNet's weights were float16 in the TFJS release the ONNX files were converted from, so every float32 initializer
that equals its own float16 rounding is stored as float16 (half the bytes) and tagged; `fallwatch.pose.onnx_heatmap`
casts the tagged initializers back to float32 at load, so the graph that runs is the original one, value for value.
Initializers that would change are kept as float32. The script refuses to write a file whose restored graph differs
from the source in any initializer.

    python scripts/bundle_movenet.py ../shared/weights/movenet-singlepose models
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from fallwatch.pose.onnx_heatmap import FP16_STORAGE_KEY, restore_float32

FILES = ("movenet_singlepose_thunder.onnx", "movenet_singlepose_lightning.onnx")


def to_fp16_storage(proto: onnx.ModelProto) -> tuple[int, int]:
    """Store exactly representable float32 initializers as float16, in place; returns (converted, kept)."""
    converted = kept = 0
    names = []
    for index, tensor in enumerate(proto.graph.initializer):
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        values = numpy_helper.to_array(tensor)
        half = values.astype(np.float16)
        if np.array_equal(half.astype(np.float32), values, equal_nan=True):
            proto.graph.initializer[index].CopyFrom(numpy_helper.from_array(half, tensor.name))
            names.append(tensor.name)
            converted += 1
        else:
            kept += 1
    entry = proto.metadata_props.add()
    entry.key, entry.value = FP16_STORAGE_KEY, ",".join(names)
    return converted, kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="folder with the float32 MoveNet ONNX files")
    parser.add_argument("target", type=Path, help="folder to write the float16-stored copies to (models/)")
    args = parser.parse_args()
    for name in FILES:
        original = onnx.load(str(args.source / name))
        packed = onnx.load(str(args.source / name))
        converted, kept = to_fp16_storage(packed)
        restored = onnx.ModelProto()
        restored.CopyFrom(packed)
        restore_float32(restored)
        for a, b in zip(original.graph.initializer, restored.graph.initializer, strict=True):
            if a.data_type != b.data_type or not np.array_equal(numpy_helper.to_array(a), numpy_helper.to_array(b)):
                raise SystemExit(f"{name}: initializer {a.name} does not round-trip; not written")
        out = args.target / name
        onnx.save(packed, str(out))
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        src_size = (args.source / name).stat().st_size
        print(f"{name}: {converted} initializers as float16, {kept} kept float32; "
              f"{src_size / 1e6:.2f} MB -> {out.stat().st_size / 1e6:.2f} MB; sha256 {digest}")


if __name__ == "__main__":
    main()
