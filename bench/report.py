"""Turning bench results into the comparison people read: ratios, tables, a plot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from skipfold.bench.ratios import folding_readings
from skipfold.common.io import atomic_path, write_bytes_atomic, write_json_atomic


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _table(header: str, align: str, rows: list[str]) -> list[str]:
    return ["", header, align, *rows]


def _in_process_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for r in results["in_process"]:
        spread = f"{r['round_p25_ms']:.3g}-{r['round_p75_ms']:.3g}"
        roof = f"{100 * r['roof_fraction']:.0f}%" if r["roof_fraction"] else "-"
        rows.append(
            f"| {r['model']} | {r['engine']} | {r['precision']} | {r['provider']} | {r['level']} "
            f"| {r['batch']} "
            f"| {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {spread} "
            f"| {r['images_per_s']:,.0f} | {_fmt(r['gflops'])} | {roof} |"
        )
    return _table(
        "| model | engine | precision | provider | level | batch | p50 ms | p90 ms | p99 ms "
        "| round p25-p75 ms | images/s | GFLOP/s | of roof |",
        "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        rows,
    )


def _ratio_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for c in results.get("ratios", []):
        value = f"{c['ratio']:.3f}" if "ratio" in c else f"{c['difference_ms']:+.2f} ms"
        rows.append(
            f"| {c['comparison']} | {c['batch']} | {c['level']} | {c['provider']} "
            f"| {c['numerator_ms']:.3f} | {c['denominator_ms']:.3f} | {value} |"
        )
    return _table(
        "| comparison | batch | level | provider | p50 ms | vs p50 ms | ratio |",
        "| --- | ---: | --- | --- | ---: | ---: | ---: |",
        rows,
    )


def _overhead_table(overhead: dict[str, Any]) -> list[str]:
    clients = [("Python client", overhead)]
    clients += [("wrk", overhead["wrk"])] if overhead.get("wrk") else []
    rows = [
        f"| {client} | {label} | {o[key + '_p50_ms']:.3f} | {o[key + '_p90_ms']:.3f} |"
        for client, o in clients
        for key, label in (
            ("in_process", f"{overhead['model']} in-process (ONNX Runtime, batch 1)"),
            ("http", f"POST /predict?model={overhead['model']} (one {overhead['image']})"),
            ("health", "GET /v2/health/live (a bare round trip)"),
        )
    ]
    counts = f"Python client {overhead['rounds']} rounds, {overhead['errors']} errors"
    if overhead.get("wrk"):
        w = overhead["wrk"]
        counts += f"; wrk {w['rounds']} rounds, {w['requests']:,} requests, {w['errors']} errors"
    return _table(
        f"| one client, interleaved ({counts}) | step | p50 ms | p90 ms |",
        "| --- | --- | ---: | ---: |",
        rows,
    )


def _http_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for h in results["http"]:
        share = h.get("fraction_of_in_process")
        rows.append(
            f"| {h['model']} | {h['concurrency']} | {h['requests_per_s']:,.0f} "
            f"| {'-' if share is None else f'{100 * share:.0f}%'} | {h['p50_ms']:.2f} "
            f"| {h['p90_ms']:.2f} | {h['p99_ms']:.2f} | {h['errors']} |"
        )
    return _table(
        "| HTTP model | concurrency | requests/s | of in-process | p50 ms | p90 ms | p99 ms "
        "| errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        rows,
    )


def markdown(results: dict[str, Any], command: str) -> str:
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {results['machine']}; {results['threads']} intra-op threads; "
        f"ONNX Runtime {results['onnxruntime_version']}"
        + (f"; OpenVINO {results['openvino_version']}" if results.get("openvino_version") else "")
        + f"; skipfold {results['skipfold_version']}  ",
        *[
            f"Roof, {precision}: {roof['gops']:.0f} G{'OP' if precision == 'int8' else 'FLOP'}/s "
            f"({roof['method']})  "
            for precision, roof in results.get("roofs", {}).items()
        ],
        *_in_process_table(results),
    ]
    if results.get("ratios"):
        lines += _ratio_table(results)
        lines += folding_readings(results)
    if results.get("http_overhead"):
        lines += _overhead_table(results["http_overhead"])
    if results.get("http"):
        lines += _http_table(results)
    for note in results.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _latency_panel(ax: Any, rows: list[dict[str, Any]]) -> None:
    """Batch-1 (smallest batch) latency per model, engine and level, with the round spread."""
    batch = min(r["batch"] for r in rows)
    rows = [r for r in rows if r["batch"] == batch]
    short = {"onnxruntime": "ORT", "openvino": "OV", "onnxruntime-openvino": "ORT-OV"}
    labels = [
        f"{r['model']}\n{short.get(r['engine'], r['engine'])} {r['precision']} {r['level']}"
        for r in rows
    ]
    errors = [
        [max(0.0, r["p50_ms"] - r["round_p25_ms"]) for r in rows],
        [max(0.0, r["round_p75_ms"] - r["p50_ms"]) for r in rows],
    ]
    ax.barh(range(len(rows)), [r["p50_ms"] for r in rows], xerr=errors, color="tab:blue", alpha=0.8)
    ax.set_yticks(range(len(rows)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set(
        xlabel="p50 latency (ms), bars: p25-p75 of round medians", title=f"latency at batch {batch}"
    )
    ax.grid(axis="x", alpha=0.3)


def _http_panel(ax: Any, http: list[dict[str, Any]]) -> None:
    for model in dict.fromkeys(h["model"] for h in http):
        hs = [h for h in http if h["model"] == model]
        ax.plot(
            [h["concurrency"] for h in hs],
            [h["requests_per_s"] for h in hs],
            marker="o",
            label=f"{model} over HTTP",
        )
        if hs[0].get("in_process_images_per_s"):
            ax.axhline(
                hs[0]["in_process_images_per_s"],
                ls="--",
                color="gray",
                label=f"{model} in-process, batch 1",
            )
    ax.set(
        xlabel="concurrent clients",
        ylabel="requests/s",
        xscale="log",
        title="throughput against concurrency",
    )


def _batch_panel(ax: Any, rows: list[dict[str, Any]]) -> None:
    for key in dict.fromkeys((r["model"], r["engine"], r["precision"], r["level"]) for r in rows):
        if key[3] not in ("all", "-"):
            continue
        same = [r for r in rows if (r["model"], r["engine"], r["precision"], r["level"]) == key]
        ax.plot(
            [r["batch"] for r in same],
            [r["images_per_s"] for r in same],
            marker="o",
            label=" ".join(key),
        )
    ax.set(
        xlabel="batch size",
        ylabel="images/s",
        xscale="log",
        title="in-process throughput against batch size",
    )


def plot(results: dict[str, Any], path: Path) -> None:
    """Left: batch-1 latency per model, engine and level. Right: throughput."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    _latency_panel(left, results["in_process"])
    if results.get("http"):
        _http_panel(right, results["http"])
    else:
        _batch_panel(right, results["in_process"])
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def write_outputs(results: dict[str, Any], out: Path, command: str) -> list[Path]:
    """results.json, results.md and (with matplotlib) results.png; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", json.loads(json.dumps(results)))
    write_bytes_atomic(out / "results.md", markdown(results, command).encode())
    written = [out / "results.json", out / "results.md"]
    if importlib.util.find_spec("matplotlib") is not None:
        plot(results, out / "results.png")
        written.append(out / "results.png")
    return written
