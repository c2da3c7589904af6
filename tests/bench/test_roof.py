"""The roof: measured with ONNX Runtime's own kernels, never below a measured row."""

import pytest

from skipfold.bench.roof import (
    FLOAT,
    INT8,
    INT32,
    UINT8,
    Roof,
    apply_roofs,
    matmul_model,
    measure_roofs,
)
from tests.helpers import float32_matmul_gflops


def test_the_matmul_graphs_built_without_the_onnx_package_are_valid_onnx():
    onnx = pytest.importorskip("onnx")
    for op, types in (("MatMul", (FLOAT,) * 3), ("MatMulInteger", (UINT8, INT8, INT32))):
        model = onnx.load_from_string(matmul_model(op, *types))
        onnx.checker.check_model(model, full_check=True)
        assert [n.op_type for n in model.graph.node] == [op]
        dims = [[d.dim_param for d in v.type.tensor_type.shape.dim] for v in model.graph.input]
        assert dims == [["m", "k"], ["k", "n"]]


@pytest.mark.e2e  # two timings compared: a measurement, kept out of the unit pass
def test_the_roofs_are_onnx_runtimes_matrix_multiply_rates():
    roofs = measure_roofs(threads=1, repeats=1)
    assert set(roofs) == {"fp32", "int8"}
    # against NumPy's BLAS on this machine (another float32 matrix multiply, measured here)
    assert 0.5 < roofs["fp32"].gops / float32_matmul_gflops(1) < 2
    # 8-bit products: twice the multiply-adds of float32 per instruction on every x86 SIMD unit
    assert roofs["int8"].gops > roofs["fp32"].gops
    assert "MatMul float32" in roofs["fp32"].method
    assert "MatMulInteger u8s8" in roofs["int8"].method


def test_no_row_reads_over_the_roof_of_its_precision():
    roofs = {"fp32": Roof(100.0, "measured"), "int8": Roof(400.0, "measured")}
    rows = [
        {"precision": "fp32", "gflops": 50.0},
        {"precision": "fp32", "gflops": 150.0},  # faster than the kernels measured
        {"precision": "int8", "gflops": 200.0},
        {"precision": "int8", "gflops": None},
        # an fp16 graph on ONNX Runtime's CPU provider computes in float32: held to that roof
        {"precision": "fp16", "roof_precision": "fp32", "gflops": 75.0},
    ]
    apply_roofs(rows, roofs)
    assert [r["roof_fraction"] for r in rows] == [50 / 150, 1.0, 0.5, None, 0.5]
    assert roofs["fp32"].gops == 150.0 and "raised to 150" in roofs["fp32"].method
    assert roofs["int8"].gops == 400.0 and roofs["int8"].method == "measured"


def test_the_report_reads_where_folding_costs_something_from_its_own_ratios():
    from skipfold.bench.ratios import folding_readings

    def ratio(what: str, value: float) -> dict:
        return {"comparison": what, "level": "all", "batch": 1, "provider": "CPU", "ratio": value}

    lines = folding_readings(
        {
            "ratios": [
                ratio("unfolded BN / folded BN", 1.01),
                ratio("unfolded BN / folded BN (int8)", 1.5),
                ratio("folded BN / SkipInit", 1.2),
                ratio("unfolded BN / folded BN (test-flip)", 1.1),
                ratio("unfolded BN / folded BN (int8, test-flip)", 1.2),
            ]
        }
    )
    assert lines[1] == "Where folding matters (unfolded / folded p50):"
    assert "fp32, level all, batch 1, CPU: no measurable cost (1.010)" in lines[2]
    assert lines[3] == "- int8, level all, batch 1, CPU: unfolded BN costs 50%"
    assert lines[4] == "- fp32, test-flip, level all, batch 1, CPU: unfolded BN costs 10%"
    assert lines[5] == "- int8, test-flip, level all, batch 1, CPU: unfolded BN costs 20%"
    assert len(lines) == 6


def test_with_round_spreads_a_cost_is_read_where_the_spreads_do_not_overlap():
    """A GPU's rounds vary by about 1%: 2.3% apart with disjoint spreads is a cost (the H200's
    unfolded / folded at batch 1); 5% apart with overlapping spreads (a noisy CPU) is not."""
    from skipfold.bench.ratios import folding_readings

    def ratio(value: float, unfolded: list[float], folded: list[float]) -> dict:
        return {
            "comparison": "unfolded BN / folded BN", "level": "all", "batch": 1,
            "provider": "CUDA", "ratio": value,
            "numerator_rounds_ms": unfolded, "denominator_rounds_ms": folded,
        }  # fmt: skip

    lines = folding_readings(
        {
            "ratios": [
                ratio(1.023, [0.518, 0.522], [0.505, 0.513]),
                ratio(1.05, [5.0, 6.0], [4.9, 5.6]),
                ratio(0.97, [0.48, 0.49], [0.50, 0.51]),
            ]
        }
    )
    assert lines[2] == "- fp32, level all, batch 1, CUDA: unfolded BN costs 2%"
    assert "CUDA: no measurable cost (1.050): within the rounds' spread" in lines[3]
    assert "CUDA: unfolded ran faster (0.970)" in lines[4]
