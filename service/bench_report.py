"""Turning bench results into the comparison people read: ratios, tables, a plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from skipfold.io import atomic_path, write_bytes_atomic, write_json_atomic


def _kind(model: str, meta: dict[str, dict[str, str]]) -> str:
    """'bn-folded', 'bn-unfolded', 'skipinit', ... from the model's metadata."""
    m = meta.get(model, {})
    variant = m.get("variant", "?")
    if variant == "bn":
        return "bn-folded" if m.get("folded") == "true" else "bn-unfolded"
    return variant


def _find(rows: list[dict], **match: Any) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def ratios(results: dict[str, Any], meta: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    """The comparisons the project exists for, each as (what, numerator, denominator, ratio)."""
    rows = results["in_process"]
    ort_rows = [r for r in rows if r["engine"] == "onnxruntime"]
    by_kind: dict[str, str] = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        by_kind.setdefault(_kind(model, meta), model)
    out = []

    def add(what: str, a: dict | None, b: dict | None) -> None:
        if a and b:
            out.append(
                {
                    "comparison": what,
                    "batch": a["batch"],
                    "level": a["level"],
                    "provider": a["provider"],
                    "numerator_ms": a["p50_ms"],
                    "denominator_ms": b["p50_ms"],
                    "ratio": a["p50_ms"] / b["p50_ms"],
                }
            )

    for what, top, bottom in (
        ("folded BN / SkipInit", "bn-folded", "skipinit"),
        ("unfolded BN / folded BN", "bn-unfolded", "bn-folded"),
    ):
        a, b = by_kind.get(top), by_kind.get(bottom)
        for r in ort_rows:
            if a and b and r["model"] == a:
                same = {k: r[k] for k in ("batch", "level", "provider")}
                add(what, r, _find(ort_rows, model=b, **same))
    for r in ort_rows:
        if r["level"] == "all":
            eager = _find(rows, model=r["model"], engine="torch-eager", batch=r["batch"])
            add(f"ONNX Runtime ({r['model']}) / PyTorch eager", r, eager)
    overhead = results.get("http_overhead")
    if overhead:
        out.append(
            {
                "comparison": f"HTTP p50 - in-process p50 ({overhead['model']}, one client, "
                "interleaved)",
                "batch": 1,
                "level": "all",
                "provider": overhead["provider"],
                "numerator_ms": overhead["http_p50_ms"],
                "denominator_ms": overhead["in_process_p50_ms"],
                "difference_ms": overhead["difference_ms"],
            }
        )
    return out


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def markdown(results: dict[str, Any], command: str) -> str:
    lines = [
        f"Command: `{command}`  ",
        f"Machine: {results['machine']}; {results['threads']} intra-op threads; "
        f"ONNX Runtime {results['onnxruntime_version']}; skipfold {results['skipfold_version']}  ",
        f"Roof: {results['roof_gflops']:.0f} GFLOP/s ({results['roof_method']})",
        "",
        "| model | engine | provider | level | batch | p50 ms | p90 ms | p99 ms "
        "| round p25-p75 ms | images/s | GFLOP/s | of roof |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results["in_process"]:
        spread = f"{r['round_p25_ms']:.3g}-{r['round_p75_ms']:.3g}"
        roof = f"{100 * r['roof_fraction']:.0f}%" if r["roof_fraction"] else "-"
        lines.append(
            f"| {r['model']} | {r['engine']} | {r['provider']} | {r['level']} | {r['batch']} "
            f"| {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} | {spread} "
            f"| {r['images_per_s']:,.0f} | {_fmt(r['gflops'])} | {roof} |"
        )
    if results.get("ratios"):
        lines += [
            "",
            "| comparison | batch | level | provider | p50 ms | vs p50 ms | ratio |",
            "| --- | ---: | --- | --- | ---: | ---: | ---: |",
        ]
        for c in results["ratios"]:
            value = f"{c['ratio']:.3f}" if "ratio" in c else f"+{c['difference_ms']:.2f} ms"
            lines.append(
                f"| {c['comparison']} | {c['batch']} | {c['level']} | {c['provider']} "
                f"| {c['numerator_ms']:.3f} | {c['denominator_ms']:.3f} | {value} |"
            )
    overhead = results.get("http_overhead")
    if overhead:
        lines += [
            "",
            f"| one client, interleaved ({overhead['rounds']} rounds, {overhead['errors']} errors) "
            "| p50 ms | p90 ms |",
            "| --- | ---: | ---: |",
        ]
        for key, label in (
            ("in_process", f"{overhead['model']} in-process (ONNX Runtime, batch 1)"),
            ("http", f"POST /predict?model={overhead['model']} (one 32x32 PNG)"),
            ("health", "GET /v2/health/live (HTTP alone)"),
        ):
            lines.append(
                f"| {label} | {overhead[key + '_p50_ms']:.3f} | {overhead[key + '_p90_ms']:.3f} |"
            )
    if results.get("http"):
        lines += [
            "",
            "| HTTP model | concurrency | requests/s | of in-process | p50 ms | p90 ms "
            "| p99 ms | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for h in results["http"]:
            share = h.get("fraction_of_in_process")
            lines.append(
                f"| {h['model']} | {h['concurrency']} | {h['requests_per_s']:,.0f} "
                f"| {'-' if share is None else f'{100 * share:.0f}%'} | {h['p50_ms']:.2f} "
                f"| {h['p90_ms']:.2f} | {h['p99_ms']:.2f} | {h['errors']} |"
            )
    for note in results.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """Left: batch-1 latency per model, engine and level. Right: throughput."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4.8), layout="constrained")
    left, right = fig.subplots(1, 2)
    batch1 = [
        r
        for r in results["in_process"]
        if r["batch"] == min(x["batch"] for x in results["in_process"])
    ]
    labels = [
        f"{r['model']}\n{r['engine'].replace('onnxruntime', 'ORT')} {r['level']}" for r in batch1
    ]
    values = [r["p50_ms"] for r in batch1]
    errors = [
        [r["p50_ms"] - r["round_p25_ms"] for r in batch1],
        [r["round_p75_ms"] - r["p50_ms"] for r in batch1],
    ]
    errors = [[max(0.0, e) for e in side] for side in errors]
    left.barh(range(len(batch1)), values, xerr=errors, color="tab:blue", alpha=0.8)
    left.set_yticks(range(len(batch1)), labels, fontsize=7)
    left.invert_yaxis()
    left.set(
        xlabel="p50 latency (ms), bars: p25-p75 of round medians",
        title=f"latency at batch {batch1[0]['batch']}",
    )
    left.grid(axis="x", alpha=0.3)
    if results.get("http"):
        for model in dict.fromkeys(h["model"] for h in results["http"]):
            hs = [h for h in results["http"] if h["model"] == model]
            right.plot(
                [h["concurrency"] for h in hs],
                [h["requests_per_s"] for h in hs],
                marker="o",
                label=f"{model} over HTTP",
            )
            if hs[0].get("in_process_images_per_s"):
                right.axhline(
                    hs[0]["in_process_images_per_s"],
                    ls="--",
                    color="gray",
                    label=f"{model} in-process, batch 1",
                )
        right.set(
            xlabel="concurrent clients",
            ylabel="requests/s",
            xscale="log",
            title="throughput against concurrency",
        )
    else:
        for model, engine, level in dict.fromkeys(
            (r["model"], r["engine"], r["level"]) for r in results["in_process"]
        ):
            if level not in ("all", "-"):
                continue
            rs = [
                r
                for r in results["in_process"]
                if (r["model"], r["engine"], r["level"]) == (model, engine, level)
            ]
            right.plot(
                [r["batch"] for r in rs],
                [r["images_per_s"] for r in rs],
                marker="o",
                label=f"{model} {engine} {level}",
            )
        right.set(
            xlabel="batch size",
            ylabel="images/s",
            xscale="log",
            title="in-process throughput against batch size",
        )
    right.legend(fontsize=7)
    right.grid(alpha=0.3)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def write_outputs(results: dict[str, Any], out: Path, command: str) -> str:
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "results.json", json.loads(json.dumps(results)))
    text = markdown(results, command)
    write_bytes_atomic(out / "results.md", text.encode())
    plot(results, out / "results.png")
    return text
