"""The roof: the machine's peak rate for each precision, so that "% of roof" means something.

Measured with the kernels the served models themselves run on: ONNX Runtime's own float32
matrix multiply (MLAS SGEMM) and its uint8 x int8 integer matrix multiply (VNNI or AMX where the
CPU has them), at several sizes, the best median, with the benchmark's thread budget. A general
matrix multiply is the best case of these kernels; a convolution runs on the same ones. Should a
model still run faster than every size measured (a kernel of its own, a CPU that boosts its
clock), the roof is that model's rate and the report says so: no row reads over 100%.
"""

from __future__ import annotations

import functools
import statistics
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

SIZES = (256, 512, 1024)
_WORK_PER_TIMING = 2e9  # operations per timed block: about 5-20 ms on a small CPU


@dataclass
class Roof:
    gops: float  # 10^9 operations per second (a multiply-add is two)
    method: str


# The part of onnx.proto a two-input graph needs, with onnx.proto's own field numbers:
# message -> (field, number, type, repeated). Built with protobuf's descriptors, because the
# serving install has protobuf and ONNX Runtime but not the onnx package.
_ONNX_SUBSET: dict[str, list[tuple[str, int, str, bool]]] = {
    "OperatorSetIdProto": [("domain", 1, "string", False), ("version", 2, "int64", False)],
    "Dimension": [("dim_value", 1, "int64", False), ("dim_param", 2, "string", False)],
    "TensorShapeProto": [("dim", 1, "Dimension", True)],
    "Tensor": [("elem_type", 1, "int32", False), ("shape", 2, "TensorShapeProto", False)],
    "TypeProto": [("tensor_type", 1, "Tensor", False)],
    "ValueInfoProto": [("name", 1, "string", False), ("type", 2, "TypeProto", False)],
    "NodeProto": [
        ("input", 1, "string", True),
        ("output", 2, "string", True),
        ("op_type", 4, "string", False),
    ],
    "GraphProto": [
        ("node", 1, "NodeProto", True),
        ("name", 2, "string", False),
        ("input", 11, "ValueInfoProto", True),
        ("output", 12, "ValueInfoProto", True),
    ],
    "ModelProto": [
        ("ir_version", 1, "int64", False),
        ("graph", 7, "GraphProto", False),
        ("opset_import", 8, "OperatorSetIdProto", True),
    ],
}
FLOAT, UINT8, INT8, INT32 = 1, 2, 3, 6  # onnx.TensorProto.DataType


@functools.cache
def _model_class() -> Any:
    from google.protobuf import descriptor_pb2, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="skipfold_onnx_subset.proto", package="skipfold.onnx", syntax="proto3"
    )
    for message_name, fields in _ONNX_SUBSET.items():
        message = file.message_type.add(name=message_name)
        for name, number, kind, repeated in fields:
            added = message.field.add(name=name, number=number)
            added.label = field.LABEL_REPEATED if repeated else field.LABEL_OPTIONAL
            if kind in _ONNX_SUBSET:
                added.type, added.type_name = field.TYPE_MESSAGE, f".skipfold.onnx.{kind}"
            else:
                added.type = getattr(field, f"TYPE_{kind.upper()}")
    return message_factory.GetMessages([file])["skipfold.onnx.ModelProto"]


def matmul_model(op: str, a_type: int, b_type: int, y_type: int) -> bytes:
    """A graph of one `op` (MatMul, MatMulInteger): y[m, n] = a[m, k] @ b[k, n], any sizes."""
    model = _model_class()(ir_version=8)
    model.opset_import.add(domain="", version=13)
    graph = model.graph
    graph.name = op
    graph.node.add(input=["a", "b"], output=["y"], op_type=op)
    for values, name, kind, dims in (
        (graph.input, "a", a_type, "mk"),
        (graph.input, "b", b_type, "kn"),
        (graph.output, "y", y_type, "mn"),
    ):
        tensor = values.add(name=name).type.tensor_type
        tensor.elem_type = kind
        for dim in dims:
            tensor.shape.dim.add(dim_param=dim)
    return model.SerializeToString()


def _matmul_session(precision: str, threads: int) -> Any:
    import onnxruntime as ort

    if precision == "fp32":
        model = matmul_model("MatMul", FLOAT, FLOAT, FLOAT)
    else:
        model = matmul_model("MatMulInteger", UINT8, INT8, INT32)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _operands(precision: str, size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if precision == "fp32":
        return {
            "a": rng.standard_normal((size, size), dtype=np.float32),
            "b": rng.standard_normal((size, size), dtype=np.float32),
        }
    return {
        "a": rng.integers(0, 256, (size, size), dtype=np.uint8),
        "b": rng.integers(-128, 128, (size, size), dtype=np.int8),
    }


def _rate(session: Any, precision: str, size: int, repeats: int) -> float:
    feed = _operands(precision, size)
    operations = 2 * size**3
    calls = max(1, round(_WORK_PER_TIMING / operations))
    session.run(None, feed)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            session.run(None, feed)
        times.append((time.perf_counter() - started) / calls)
    return operations / statistics.median(times) / 1e9


def measure_roofs(threads: int, repeats: int = 5) -> dict[str, Roof]:
    """{"fp32": ..., "int8": ...}: ONNX Runtime's matrix multiply, best size of SIZES."""
    roofs = {}
    for precision, kernel in (("fp32", "MatMul float32"), ("int8", "MatMulInteger u8s8")):
        session = _matmul_session(precision, threads)
        rates = {size: _rate(session, precision, size, repeats) for size in SIZES}
        best = max(rates, key=rates.__getitem__)
        roofs[precision] = Roof(
            rates[best],
            f"ONNX Runtime {kernel}, {best}x{best}x{best}, the best of "
            f"{', '.join(map(str, SIZES))}; median of {repeats}, {threads} threads",
        )
    return roofs


def apply_roofs(rows: list[dict[str, Any]], roofs: dict[str, Roof]) -> None:
    """Each row's fraction of its precision's roof; a roof below a measured row is raised to
    that row's rate, and its method says so."""
    for precision, roof in roofs.items():
        rates = [r["gflops"] for r in rows if r.get("precision") == precision and r["gflops"]]
        if rates and max(rates) > roof.gops:
            roof.method += (
                f"; raised to {max(rates):.0f}, the fastest model measured, which beat it"
            )
            roof.gops = max(rates)
    for row in rows:
        roof = roofs.get(row.get("precision", "fp32"))
        gops = row["gflops"]
        row["roof_fraction"] = gops / roof.gops if roof and gops else None
