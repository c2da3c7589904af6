"""Issue 14's promise: `skipfold train` with every option at its default trains every variant.

docs/results.md has the full-size figures (WRN-10-2, 3 epochs); this is the same at WRN-10-1
for 2 epochs, which the suite can afford. Training on the CPU is deterministic for a seed.
"""

import json

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("variant", ["bn", "skipinit", "skipinit-reg"])
def test_every_variant_learns_the_built_in_data_with_the_defaults(variant, default_run):
    run, result = default_run(variant)  # tests/conftest.py: the real command, defaults
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["test_acc"] >= 0.90, rows
    recipe = json.loads((run / "config.json").read_text())["recipe"]
    assert (recipe["recipe"], recipe["batch_size"], recipe["schedule"]) == (
        "skipfold",
        16,
        "cosine",
    )
    assert recipe["standardize"] == "per-image"
