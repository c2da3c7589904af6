"""A request's values as the model's input type: every value checked (range, kind, count), raw
bytes read little-endian, and a request's tensors checked against the signature, each refusal
one specific message (HTTP and gRPC share these)."""

import numpy as np
import pytest

from skipfold.service.failures import ApiError
from skipfold.service.open_inference import CheckedInput, raw_values, typed_values
from skipfold.service.signature import TensorSpec


def _input(datatype: str, shape: list[int]) -> CheckedInput:
    return CheckedInput(0, TensorSpec("x", datatype, tuple(shape[1:])), shape)


@pytest.mark.parametrize(
    ("datatype", "values", "expected"),
    [
        ("INT8", [-128, 127], np.array([[-128, 127]], np.int8)),
        ("UINT16", [0, 65535], np.array([[0, 65535]], np.uint16)),
        ("INT64", [-(2**62), 2**62], np.array([[-(2**62), 2**62]], np.int64)),
        ("FP16", [0.5, 3], np.array([[0.5, 3]], np.float16)),
        ("FP64", [1e300, -2], np.array([[1e300, -2]], np.float64)),
        ("BOOL", [True, False], np.array([[True, False]])),
    ],
)
def test_values_in_range_become_the_inputs_type(datatype, values, expected):
    got = typed_values(np.array(values), _input(datatype, [1, 2]), "'x' 'data'")
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("datatype", "values", "message"),
    [
        ("INT8", [-129, 0], "INT8 input values must be integers in -128..127"),
        ("UINT8", [0, 256], "UINT8 input values must be integers in 0..255"),
        ("UINT32", [-1, 0], "UINT32 input values must be integers in 0..4294967295"),
        ("INT32", [0.5, 1.0], "input 'x' (INT32) takes integers"),
        ("BOOL", [0, 1], "input 'x' (BOOL) takes booleans"),
        ("FP32", [1.0], "input 'x' 'data' holds 1 values; shape [1, 2] needs 2"),
        ("FP16", [1.0, 70000], "FP16 input values must lie within ±65504"),
        ("FP32", [1e39, 0], "FP32 input values must lie within ±3.40282e+38"),
    ],
)
def test_values_that_do_not_fit_are_refused_naming_why(datatype, values, message):
    with pytest.raises(ApiError) as caught:
        typed_values(np.array(values), _input(datatype, [1, 2]), "'x' 'data'")
    assert caught.value.status == 400 and message in str(caught.value)


def test_raw_bytes_are_little_endian_and_their_length_is_checked():
    values = np.array([[1.5, -2.0, 3.25]], np.float32)
    raw = values.astype("<f4").tobytes()
    np.testing.assert_array_equal(raw_values(raw, _input("FP32", [1, 3]), "raw input 'x'"), values)
    wide = np.array([[2**40]], "<i8").tobytes()
    assert raw_values(wide, _input("INT64", [1, 1]), "raw")[0, 0] == 2**40
    with pytest.raises(ApiError, match="raw input 'x' holds 11 bytes; shape \\[1, 3\\] of FP32"):
        raw_values(raw[:-1], _input("FP32", [1, 3]), "raw input 'x'")
