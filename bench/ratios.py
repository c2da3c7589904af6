"""The comparisons the project exists for, read from the bench's rows: BN folded against
SkipInit, unfolded against folded (within each engine and precision), each engine and precision
against ONNX Runtime in float32, a model with test-time flips against the same run's export
without them, and ONNX Runtime against PyTorch eager."""

from __future__ import annotations

from typing import Any

from skipfold.bench.variants import GRAPHS

NO_COST_BAND = 0.03  # without round spreads (older results): |ratio - 1| below this is noise
_WITHIN = (
    ("folded BN / SkipInit", "bn-folded", "skipinit"),
    ("unfolded BN / folded BN", "bn-unfolded", "bn-folded"),
)


_FLIPS = {True: " test-flip", False: "", None: ""}  # the label of a model with test-time flips


def _find(rows: list[dict], **match: Any) -> dict | None:
    return next((r for r in rows if all(r.get(k) == v for k, v in match.items())), None)


def _base_kinds(models: dict[str, dict[str, Any]]) -> dict[str, str]:
    """model -> its kind without the precision suffix (bn-folded, bn-unfolded, skipinit...)."""
    kinds = {}
    for name, info in models.items():
        kind, precision = info.get("kind", "unknown"), info.get("precision") or "fp32"
        kinds[name] = kind.removesuffix(f"-{precision}") if precision != "fp32" else kind
    return kinds


def _networks(models: dict[str, dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """model -> (test-time flips, depth, width, source run): the same network in another
    precision or engine has the same; models of other runs or shapes, or with twice the work per
    image, are never compared as one network."""
    return {
        name: (m.get("test_flip", False), m.get("depth"), m.get("width"), m.get("source_run"))
        for name, m in models.items()
    }


def _path(row: dict[str, Any]) -> str:
    """'' for ONNX Runtime fp32 (the reference), else 'int8', 'openvino bf16', ..."""
    if row["engine"] == "onnxruntime":
        return "" if row["precision"] == "fp32" else row["precision"]
    return f"{row['engine']} {row['precision']}"


def _ratio(what: str, a: dict, b: dict) -> dict[str, Any]:
    out = {
        "comparison": what,
        "batch": a["batch"],
        "level": a["level"],
        "provider": a["provider"],
        "numerator_ms": a["p50_ms"],
        "denominator_ms": b["p50_ms"],
        "ratio": a["p50_ms"] / b["p50_ms"],
    }
    if all("round_p25_ms" in row for row in (a, b)):  # the spread of each side's round medians
        out["numerator_rounds_ms"] = [a["round_p25_ms"], a["round_p75_ms"]]
        out["denominator_rounds_ms"] = [b["round_p25_ms"], b["round_p75_ms"]]
    return out


def _measurable(c: dict[str, Any]) -> int:
    """+1: the numerator is slower beyond noise, -1: faster, 0: not measurably different. With
    both sides' round medians at hand, beyond noise means their p25-p75 ranges do not overlap
    (a spread of 1% on a GPU, 10% on a busy CPU); without, more than NO_COST_BAND apart."""
    if "numerator_rounds_ms" in c:
        (low, high), (base_low, base_high) = c["numerator_rounds_ms"], c["denominator_rounds_ms"]
        return 1 if low > base_high else -1 if high < base_low else 0
    excess = c["ratio"] - 1
    return 1 if excess > NO_COST_BAND else -1 if excess < -NO_COST_BAND else 0


def ratios(results: dict[str, Any], models: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each comparison as (what, numerator, denominator, ratio), from the same run's rows."""
    rows = [r for r in results["in_process"] if not r["engine"].startswith("torch")]
    kinds, networks = _base_kinds(models), _networks(models)
    out = _within(rows, kinds, networks) + _flip_costs(rows, kinds, networks) + _graphs(rows)
    for a in rows:
        if not _path(a):
            continue
        level = a["level"] if a["engine"] == "onnxruntime" else "all"
        provider = a["provider"] if a["engine"] == "onnxruntime" else "CPU"
        b = next((r for r in rows if not _path(r) and kinds.get(r["model"]) == kinds.get(a["model"])
                  and networks.get(r["model"]) == networks.get(a["model"])
                  and r["batch"] == a["batch"] and r["level"] == level
                  and r["provider"] == provider), None)  # fmt: skip
        if b:
            reference = "fp32" if a["engine"] == "onnxruntime" else "ONNX Runtime fp32"
            kind = kinds[a["model"]] + _FLIPS[networks[a["model"]][0]]
            out.append(_ratio(f"{kind} {_path(a)} / {reference}", a, b))
    for r in rows:
        if r["engine"] == "onnxruntime" and r["level"] == "all":
            eager = _find(results["in_process"], model=r["model"], engine="torch-eager",
                          batch=r["batch"])  # fmt: skip
            if eager:
                graphs = " with CUDA graphs" if r["provider"].endswith(GRAPHS) else ""
                what = f"ONNX Runtime{graphs} ({r['model']}) / PyTorch eager"
                out.append(_ratio(what, r, eager))
    overhead = results.get("http_overhead")
    if overhead:
        out += overhead_readings(overhead)
    return out


def _within(
    rows: list[dict], kinds: dict[str, str], networks: dict[str, tuple[Any, ...]]
) -> list[dict[str, Any]]:
    """Folded BN against SkipInit (networks of one depth and width) and unfolded against folded
    (exports of one run), at one engine and precision."""
    out = []
    for what, top, bottom in _WITHIN:
        # unfolded / folded: the same run's two exports; BN / SkipInit: two runs of one shape
        key = 4 if bottom == "bn-folded" else 3
        for a in rows:
            if kinds.get(a["model"]) != top:
                continue
            same = {k: a[k] for k in ("engine", "precision", "batch", "level", "provider")}
            network = networks.get(a["model"], (None,) * 4)[:key]
            b = next((r for r in rows if kinds.get(r["model"]) == bottom and
                      networks.get(r["model"], (None,) * 4)[:key] == network and
                      all(r[k] == v for k, v in same.items())), None)  # fmt: skip
            if b:
                label = ", ".join(filter(None, [_path(a), _FLIPS[network[0]].strip()]))
                out.append(_ratio(f"{what} ({label})" if label else what, a, b))
    return out


def _graphs(rows: list[dict]) -> list[dict[str, Any]]:
    """A model through CUDA graphs against the same model, level and batch without them."""
    out = []
    for a in rows:
        if not a["provider"].endswith(GRAPHS):
            continue
        same = {k: a[k] for k in ("model", "engine", "precision", "batch", "level")}
        b = _find(rows, provider=a["provider"].removesuffix(GRAPHS), **same)
        if b:
            out.append(_ratio(f"CUDA graphs / without ({a['model']})", a, b))
    return out


def _flip_costs(
    rows: list[dict], kinds: dict[str, str], networks: dict[str, tuple[Any, ...]]
) -> list[dict[str, Any]]:
    """A model with test-time flips against the same run's export without them, at one engine,
    precision, batch and level: what the flips cost."""
    out = []
    for a in rows:
        flips, *network = networks.get(a["model"], (None,) * 4)
        if not flips:
            continue
        same = {k: a[k] for k in ("engine", "precision", "batch", "level", "provider")}
        b = next((r for r in rows if kinds.get(r["model"]) == kinds.get(a["model"])
                  and networks.get(r["model"]) == (False, *network)
                  and all(r[k] == v for k, v in same.items())), None)  # fmt: skip
        if b:
            path = _path(a)
            what = f"{kinds[a['model']]} test-flip / without"
            out.append(_ratio(f"{what} ({path})" if path else what, a, b))
    return out


def overhead_readings(overhead: dict[str, Any]) -> list[dict[str, Any]]:
    """What serving adds to one request at one client: with wrk, whose own cost is next to
    nothing, when it was installed; a bare round trip (GET /v2/health/live) taken away, which
    removes most of any client's cost; and the Python client's own cost, wrk being the yardstick."""
    model, out = overhead["model"], []

    def row(comparison: str, numerator: float, denominator: float) -> None:
        difference = numerator - denominator
        out.append({"comparison": comparison, "batch": 1, "level": "all",
                    "provider": overhead["provider"], "numerator_ms": numerator,
                    "denominator_ms": denominator, "difference_ms": difference})  # fmt: skip

    for client, o in (("wrk", overhead.get("wrk")), ("Python client", overhead)):
        if o is None:
            continue
        own_cost = "" if client == "wrk" else ", its own cost included"
        row(f"HTTP p50 - in-process p50 ({model}, {client}{own_cost}, interleaved)",
            o["http_p50_ms"], o["in_process_p50_ms"])  # fmt: skip
        row(f"HTTP p50 - bare round trip p50 - in-process p50 ({model}, {client})",
            o["http_p50_ms"] - o["health_p50_ms"], o["in_process_p50_ms"])  # fmt: skip
    if overhead.get("wrk"):
        row("Python client's own cost: its POST /predict p50 - wrk's",
            overhead["http_p50_ms"], overhead["wrk"]["http_p50_ms"])  # fmt: skip
    return out


def folding_readings(results: dict[str, Any]) -> list[str]:
    """Where unfolded BN costs something and where the runtime removes it, read from this run's
    own unfolded / folded ratios."""
    lines = []
    for c in results.get("ratios", []):
        if c["comparison"].startswith("unfolded BN / folded BN"):
            label = c["comparison"].partition("(")[2].rstrip(")").split(", ")
            if label[0] in ("", "test-flip"):  # ONNX Runtime fp32: no path in the label
                label = ["fp32", *filter(None, label)]
            where = f"- {', '.join(label)}, level {c['level']}, batch {c['batch']}, {c['provider']}"
            verdict = _measurable(c)
            if verdict > 0:
                cost = 100 * (c["ratio"] - 1)
                lines.append(f"{where}: unfolded BN costs {cost:.{0 if cost >= 1 else 1}f}%")
            elif verdict == 0:
                lines.append(f"{where}: no measurable cost ({c['ratio']:.3f}): within the rounds' "
                             "spread (the runtime removes or hides the BNs)")  # fmt: skip
            else:
                lines.append(f"{where}: unfolded ran faster ({c['ratio']:.3f}): noise or a kernel")
    return ["", "Where folding matters (unfolded / folded p50):", *lines] if lines else []
