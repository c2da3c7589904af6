"""The roof: the machine's peak rate for each precision, so that "% of roof" means something.

Measured with the kernels the served models themselves run on: ONNX Runtime's own float32
matrix multiply (MLAS SGEMM) and its uint8 x int8 integer matrix multiply (VNNI or AMX where the
CPU has them), and for bf16 and fp16 OpenVINO's matrix multiply on operands already in that
format (AMX or AVX-512 where the CPU has them), at several sizes, the best median, with the
benchmark's thread budget. A general
matrix multiply is the best case of these kernels; a convolution runs on the same ones. Should a
model still run faster than every size measured (a kernel of its own, a CPU that boosts its
clock), the roof is that model's rate and the report says so: no row reads over 100%.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Sequence
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


_HALF_BITS = {"bf16": 0x3F00, "fp16": 0x3800}  # 0.5 in each format: operands in [0.5, 1)


def _openvino_rate(precision: str, size: int, threads: int, repeats: int) -> float:
    import openvino
    import openvino.opset13 as ops

    from skipfold.service.openvino_runtime import core

    kind = openvino.Type.bf16 if precision == "bf16" else openvino.Type.f16
    a, b = ops.parameter([size, size], kind), ops.parameter([size, size], kind)
    model = openvino.Model([ops.matmul(a, b, False, False)], [a, b])
    hint = {"INFERENCE_PRECISION_HINT": kind.get_type_name(), "INFERENCE_NUM_THREADS": threads}
    request = core().compile_model(model, "CPU", {"PERFORMANCE_HINT": "LATENCY", **hint})
    request = request.create_infer_request()
    rng = np.random.default_rng(0)
    for index in (0, 1):
        tensor = openvino.Tensor(kind, [size, size])
        bits = _HALF_BITS[precision] + rng.integers(0, 128, (size, size), dtype=np.uint16)
        tensor.data.view(np.uint16)[:] = bits
        request.set_input_tensor(index, tensor)
    operations = 2 * size**3
    calls = max(1, round(_WORK_PER_TIMING / operations))
    request.infer()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            request.infer()
        times.append((time.perf_counter() - started) / calls)
    return operations / statistics.median(times) / 1e9


def _openvino_roofs(precisions: list[str], threads: int, repeats: int) -> dict[str, Roof]:
    from skipfold.service.openvino_runtime import version

    return {
        precision: _best_size(
            {size: _openvino_rate(precision, size, threads, repeats) for size in SIZES},
            f"OpenVINO {version()} MatMul {precision}", threads, repeats,
        )
        for precision in precisions
    }  # fmt: skip


def _best_size(rates: dict[int, float], kernel: str, threads: int, repeats: int) -> Roof:
    best = max(rates, key=rates.__getitem__)
    return Roof(
        rates[best],
        f"{kernel}, {best}x{best}x{best}, the best of {', '.join(map(str, SIZES))}; "
        f"median of {repeats}, {threads} threads",
    )


def measure_roofs(
    threads: int, repeats: int = 5, openvino_precisions: Sequence[str] = ()
) -> dict[str, Roof]:
    """{"fp32": ..., "int8": ...}: ONNX Runtime's matrix multiply, best size of SIZES; and
    OpenVINO's for each of `openvino_precisions` (bf16, fp16)."""
    roofs = _openvino_roofs(list(openvino_precisions), threads, repeats)
    for precision, kernel in (("fp32", "MatMul float32"), ("int8", "MatMulInteger u8s8")):
        session = _matmul_session(precision, threads)
        rates = {size: _rate(session, precision, size, repeats) for size in SIZES}
        roofs[precision] = _best_size(rates, f"ONNX Runtime {kernel}", threads, repeats)
    return dict(
        sorted(roofs.items(), key=lambda item: ["fp32", "bf16", "fp16", "int8"].index(item[0]))
    )


def apply_roofs(rows: list[dict[str, Any]], roofs: dict[str, Roof]) -> None:
    """Each row's fraction of its precision's roof; a roof below a measured row is raised to
    that row's rate, and its method says so."""

    def held_to(row: dict[str, Any]) -> str:
        return row.get("roof_precision") or row.get("precision", "fp32")

    for precision, roof in roofs.items():
        rates = [r["gflops"] for r in rows if held_to(r) == precision and r["gflops"]]
        if rates and max(rates) > roof.gops:
            roof.method += (
                f"; raised to {max(rates):.0f}, the fastest model measured, which beat it"
            )
            roof.gops = max(rates)
    for row in rows:
        roof = roofs.get(held_to(row))
        gops = row["gflops"]
        row["roof_fraction"] = gops / roof.gops if roof and gops else None
