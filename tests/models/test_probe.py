"""The SkipInit paper's signal-propagation claims, measured on WRN-100-1 at initialization."""

import math

import pytest
import torch

from skipfold.models import build_model
from skipfold.models.probe import measure, probe
from skipfold.models.probe_report import stage_summary

DEPTH, WIDTH = 100, 1


@pytest.fixture(scope="module")
def results():
    return {v: probe(v, DEPTH, WIDTH) for v in ("bn", "skipinit", "none")}


def test_schema(results):
    result = results["bn"]
    assert {"variant", "depth", "width", "blocks"} <= result.keys()
    assert len(result["blocks"]) == 3 * (DEPTH - 4) // 6
    for row in result["blocks"]:
        assert set(row) == {"index", "stage", "shortcut", "skip_var", "branch_var", "out_var"}
        assert row["shortcut"] in ("identity", "conv")
    assert [r["index"] for r in result["blocks"]] == list(range(1, 49))
    assert [r["shortcut"] for r in result["blocks"]].count("conv") == 2  # stages 2 and 3 (k=1)


def test_skipinit_identity_blocks_are_exactly_the_identity(results):
    for row in results["skipinit"]["blocks"]:
        if row["shortcut"] == "identity":
            assert row["branch_var"] == 0.0
            assert row["out_var"] == row["skip_var"]


def test_skipinit_block_output_equals_its_input_bit_for_bit():
    torch.manual_seed(0)
    model = build_model("skipinit", DEPTH, WIDTH).train()
    x = model.stem(torch.randn(8, 3, 32, 32))
    with torch.no_grad():
        for _, block in model.blocks():
            out = block(x)
            if block.shortcut is None:
                assert torch.equal(out, x)
            x = out


def test_unnormalized_output_variance_about_doubles_per_block(results):
    for stage in stage_summary(results["none"]):
        assert 1.6 <= stage["growth_per_block"] <= 2.4, stage
    first, last = results["none"]["blocks"][0], results["none"]["blocks"][-1]
    assert last["out_var"] / first["skip_var"] > 2.0**30  # explodes with depth


def test_dividing_each_block_by_root_two_keeps_the_forward_pass_stable():
    scaled = probe("none-scaled", 100, 1, batch=4)["blocks"]
    first, last = scaled[0]["skip_var"], scaled[-1]["out_var"]
    assert 1e-4 < last / first < 1.0  # no explosion: about 2**48 without the division


def test_bn_branch_variance_stays_near_one(results):
    for row in results["bn"]["blocks"]:
        assert 0.5 <= row["branch_var"] <= 1.5, row


def test_bn_skip_variance_grows_linearly_along_a_stage(results):
    for stage in (1, 2, 3):
        rows = [r for r in results["bn"]["blocks"] if r["stage"] == stage]
        # each block adds its branch (variance ~1) to the skip path: skip_j ~ skip_1 + (j-1)
        j = torch.arange(len(rows), dtype=torch.float64)
        skip = torch.tensor([r["skip_var"] for r in rows], dtype=torch.float64)
        slope = float(((j - j.mean()) * (skip - skip.mean())).sum() / ((j - j.mean()) ** 2).sum())
        fitted = skip.mean() + slope * (j - j.mean())
        r_squared = 1 - float(((skip - fitted) ** 2).sum() / ((skip - skip.mean()) ** 2).sum())
        mean_branch = sum(r["branch_var"] for r in rows) / len(rows)
        assert r_squared > 0.98, (stage, r_squared)
        assert slope == pytest.approx(mean_branch, rel=0.25), (stage, slope, mean_branch)


def test_bn_branch_share_falls_like_one_over_j_plus_one(results):
    # Stages 2 and 3 start with a projection shortcut (skip variance ~1), so the j-th block
    # (j = 1, 2, ...) of the stage sees a skip of variance ~j and a branch of variance ~1.
    for stage in (2, 3):
        rows = [r for r in results["bn"]["blocks"] if r["stage"] == stage]
        for j, row in enumerate(rows, start=1):
            share = row["branch_var"] / row["out_var"]
            assert share * (j + 1) == pytest.approx(1.0, abs=0.45), (stage, j, share)
        assert rows[-1]["branch_var"] / rows[-1]["out_var"] < 0.1


def test_rescaling_keeps_a_1000_layer_unnormalized_net_finite_and_exact():
    torch.manual_seed(0)
    model = build_model("none", 28, 1).train()
    inputs = torch.randn(16, 3, 32, 32)
    rescaled = measure(model, inputs)  # homogeneous: rescaled by powers of two between blocks
    plain, x = [], model.stem(inputs)
    with torch.no_grad():
        for _, block in model.blocks():
            skip, branch = block.paths(x)
            x = skip + branch
            plain.append(float(x.double().var(unbiased=False)))
    for row, expected in zip(rescaled, plain, strict=True):
        assert row["out_var"] == pytest.approx(expected, rel=1e-5)
    deep = probe("none", 1000, 1, batch=4)
    assert all(math.isfinite(r["out_var"]) for r in deep["blocks"])
    assert deep["blocks"][-1]["out_var"] > 1e100
