"""ONNX Runtime's OpenVINO execution provider against OpenVINO's own runtime (compiled as
`skipfold serve --engine openvino` compiles) and ONNX Runtime's CPU provider, interleaved in one
process: interleaved rounds of 0.5-s blocks (`skipfold.bench.rounds`).

    python -m venv ep && ep/bin/pip install onnxruntime-openvino openvino -e .
    ep/bin/python scripts/experiments/ep_vs_runtime.py FP32.onnx INT8.onnx [ROUNDS]

onnxruntime-openvino replaces onnxruntime, hence its own environment; with plain onnxruntime
the execution provider's rows are left out. See docs/results.md.
"""

import json
import sys

import numpy as np
import onnxruntime as ort
import openvino as ov

from skipfold.bench.rounds import interleaved

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


EP = "OpenVINOExecutionProvider" in ort.get_available_providers()
runners = {
    "ORT CPU fp32": ort_cpu(fp32_path),
    **({"EP fp32": ort_ep(fp32_path, "f32"), "EP bf16": ort_ep(fp32_path, "bf16")} if EP else {}),
    "OpenVINO fp32": ov_runtime(fp32_path, "f32"),
    "OpenVINO bf16": ov_runtime(fp32_path, "bf16"),
    "ORT CPU int8": ort_cpu(int8_path),
    **({"EP int8": ort_ep(int8_path, None)} if EP else {}),
    "OpenVINO int8 (bf16 hint)": ov_runtime(int8_path, "bf16"),
    "OpenVINO int8 (f32 hint, as served)": ov_runtime(int8_path, "f32"),
}
if not EP:
    print("onnxruntime-openvino is not the onnxruntime here: the EP rows are left out")
x = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
reference = runners["ORT CPU fp32"](x)
for name, run in runners.items():
    for _ in range(20):
        out = run(x)
    print(f"{name}: largest logit difference from ORT fp32 {np.abs(out - reference).max():.4f}")

timings = interleaved(
    {name: (lambda run=run: run(x)) for name, run in runners.items()},
    rounds=rounds,
    block_seconds=block_s,
    warmup_calls=0,
)
base = timings["ORT CPU fp32"].summary()["p50_ms"]
print(f"\n{rounds} interleaved rounds of {block_s} s blocks (skipfold.bench.rounds)")
print("| runner | p50 ms | x ORT CPU fp32 | round p25-p75 |")
print("| --- | ---: | ---: | --- |")
for name, timing in timings.items():
    q = timing.summary()
    print(
        f"| {name} | {q['p50_ms']:.3f} | {q['p50_ms'] / base:.3f} | "
        f"{q['round_p25_ms']:.2f}-{q['round_p75_ms']:.2f} |"
    )
