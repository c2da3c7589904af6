"""The bench's comparisons pair rows of one network: never two runs or two shapes."""

from skipfold.bench.ratios import ratios


def _model(kind: str, precision: str, depth: int, run: str) -> dict:
    return {"kind": kind, "precision": precision, "depth": depth, "width": 2, "source_run": run}


def _row(model: str, precision: str, p50: float) -> dict:
    return {"model": model, "engine": "onnxruntime", "precision": precision, "provider": "CPU",
            "level": "all", "batch": 1, "p50_ms": p50}  # fmt: skip


def test_a_precision_is_compared_with_its_own_networks_fp32_and_variants_only_at_one_shape():
    models = {
        "cifar-bn": _model("bn-folded", "fp32", 16, "cifar-bn"),
        "cifar-bn-fp16": _model("bn-folded-fp16", "fp16", 16, "cifar-bn"),
        "shapes-bn-fp16": _model("bn-folded-fp16", "fp16", 10, "shapes-bn"),
        "shapes-skipinit": _model("skipinit", "fp32", 10, "shapes-skipinit"),
        "cifar-skipinit": _model("skipinit", "fp32", 16, "cifar-skipinit"),
    }
    rows = [
        _row("cifar-bn", "fp32", 1.0),
        _row("cifar-bn-fp16", "fp16", 1.25),
        _row("shapes-bn-fp16", "fp16", 0.6),
        _row("shapes-skipinit", "fp32", 0.5),
        _row("cifar-skipinit", "fp32", 1.1),
    ]
    computed = ratios({"in_process": rows}, models)
    found = {c["comparison"]: c for c in computed}
    assert len(computed) == 2 and set(found) == {"bn-folded fp16 / fp32", "folded BN / SkipInit"}
    # the fp16 export of the cifar run against that run's fp32 export, not the shapes model
    assert found["bn-folded fp16 / fp32"]["ratio"] == 1.25
    assert found["folded BN / SkipInit"]["ratio"] == 1.0 / 1.1  # WRN-16-2 against WRN-16-2


def test_unfolded_is_compared_with_the_folded_export_of_its_own_run():
    models = {
        "a": _model("bn-folded", "fp32", 16, "run-a"),
        "b": _model("bn-folded", "fp32", 16, "run-b"),
        "b-unfolded": _model("bn-unfolded", "fp32", 16, "run-b"),
    }
    rows = [_row("a", "fp32", 1.0), _row("b", "fp32", 2.0), _row("b-unfolded", "fp32", 2.2)]
    (computed,) = ratios({"in_process": rows}, models)
    assert computed["comparison"] == "unfolded BN / folded BN"
    assert computed["ratio"] == 2.2 / 2.0


def test_flip_models_are_compared_with_flip_models_and_with_their_own_run_without_flips():
    models = {
        "bn": _model("bn-folded", "fp32", 16, "bn"),
        "bn-flip": _model("bn-folded", "fp32", 16, "bn") | {"test_flip": True},
        "skipinit": _model("skipinit", "fp32", 16, "skipinit"),
        "skipinit-flip": _model("skipinit", "fp32", 16, "skipinit") | {"test_flip": True},
    }
    rows = [_row("bn", "fp32", 1.0), _row("bn-flip", "fp32", 2.0), _row("skipinit", "fp32", 1.1),
            _row("skipinit-flip", "fp32", 2.1)]  # fmt: skip
    computed = ratios({"in_process": rows}, models)
    found = {c["comparison"]: c["ratio"] for c in computed}
    assert found == {
        "folded BN / SkipInit": 1.0 / 1.1,
        "folded BN / SkipInit (test-flip)": 2.0 / 2.1,
        "bn-folded test-flip / without": 2.0 / 1.0,  # what the flips cost, per network
        "skipinit test-flip / without": 2.1 / 1.1,
    }


def test_cuda_graph_rows_are_compared_with_the_same_model_without_graphs_and_among_themselves():
    models = {
        "bn": _model("bn-folded", "fp32", 16, "run-a"),
        "bn-fp16": _model("bn-folded-fp16", "fp16", 16, "run-a"),
        "skipinit": _model("skipinit", "fp32", 16, "run-b"),
    }
    rows = []
    for provider, scale in (("CUDA", 1.0), ("CUDA+graphs", 0.75)):
        for model, precision, p50 in (("bn", "fp32", 0.68), ("bn-fp16", "fp16", 0.74),
                                      ("skipinit", "fp32", 0.70)):  # fmt: skip
            rows.append(_row(model, precision, p50 * scale) | {"provider": provider})
    computed = ratios({"in_process": rows}, models)
    found = {(c["comparison"], c["provider"]): c["ratio"] for c in computed}
    assert abs(found["CUDA graphs / without (bn)", "CUDA+graphs"] - 0.75) < 1e-12
    assert abs(found["CUDA graphs / without (bn-fp16)", "CUDA+graphs"] - 0.75) < 1e-12
    # each pairing within one provider: graphs against graphs, plain against plain
    for provider in ("CUDA", "CUDA+graphs"):
        assert abs(found["folded BN / SkipInit", provider] - 0.68 / 0.70) < 1e-12
        assert abs(found["bn-folded fp16 / fp32", provider] - 0.74 / 0.68) < 1e-12
    assert abs(found["CUDA graphs / without (skipinit)", "CUDA+graphs"] - 0.75) < 1e-12
    assert len(computed) == len(found) == 7  # and no comparison made twice
