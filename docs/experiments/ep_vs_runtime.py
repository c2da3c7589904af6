"""ONNX Runtime's OpenVINO execution provider against OpenVINO's own runtime (compiled as
`skipfold serve --engine openvino` compiles) and ONNX Runtime's CPU provider, interleaved in one
process: 0.5-s blocks of each, a fresh random order each round, medians of the round medians.

    python -m venv ep && ep/bin/pip install onnxruntime-openvino openvino numpy
    ep/bin/python docs/experiments/ep_vs_runtime.py FP32.onnx INT8.onnx [ROUNDS]

onnxruntime-openvino replaces onnxruntime, hence its own environment. See docs/results.md.
"""

import json
import random
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
import openvino as ov

THREADS = 2
fp32_path, int8_path = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 15
block_s = 0.5


def ort_cpu(path: str):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return lambda x: s.run(None, {name: x})[0]


def ort_ep(path: str, hint: str | None):
    opts = ort.SessionOptions()
    options = {"device_type": "CPU", "num_of_threads": str(THREADS)}
    if hint:
        options["load_config"] = json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": hint}})
    s = ort.InferenceSession(path, opts, providers=[("OpenVINOExecutionProvider", options)])
    assert s.get_providers()[0] == "OpenVINOExecutionProvider", s.get_providers()
    name = s.get_inputs()[0].name
    return lambda x: s.run(None, {name: x})[0]


core = ov.Core()


def ov_runtime(path: str, hint: str):
    compiled = core.compile_model(
        path,
        "CPU",
        {
            "INFERENCE_PRECISION_HINT": hint,
            "INFERENCE_NUM_THREADS": THREADS,
            "PERFORMANCE_HINT": "LATENCY",
        },
    )
    request = compiled.create_infer_request()
    return lambda x: request.infer([x])[0]


runners = {
    "ORT CPU fp32": ort_cpu(fp32_path),
    "EP fp32": ort_ep(fp32_path, "f32"),
    "EP bf16": ort_ep(fp32_path, "bf16"),
    "OpenVINO fp32": ov_runtime(fp32_path, "f32"),
    "OpenVINO bf16": ov_runtime(fp32_path, "bf16"),
    "ORT CPU int8": ort_cpu(int8_path),
    "EP int8": ort_ep(int8_path, None),
    "OpenVINO int8 (bf16 hint)": ov_runtime(int8_path, "bf16"),
    "OpenVINO int8 (f32 hint, as served)": ov_runtime(int8_path, "f32"),
}
x = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
reference = runners["ORT CPU fp32"](x)
for name, run in runners.items():
    for _ in range(20):
        out = run(x)
    print(f"{name}: largest logit difference from ORT fp32 {np.abs(out - reference).max():.4f}")

per_round: dict[str, list[float]] = {name: [] for name in runners}
order = list(runners)
for _ in range(rounds):
    random.shuffle(order)
    for name in order:
        run = runners[name]
        times = []
        end = time.perf_counter() + block_s
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - t0)
        per_round[name].append(statistics.median(times) * 1e3)

base = statistics.median(per_round["ORT CPU fp32"])
print(f"\n{rounds} rounds of {block_s} s blocks, random order each round; median of round medians")
print("| runner | p50 ms | x ORT CPU fp32 | round p25-p75 |")
print("| --- | ---: | ---: | --- |")
for name, values in per_round.items():
    q = statistics.quantiles(values, n=4)
    med = statistics.median(values)
    print(f"| {name} | {med:.3f} | {med / base:.3f} | {q[0]:.2f}-{q[2]:.2f} |")
