"""`skipfold probe` as a user runs it: tables, JSON and a plot."""

import json

import pytest
from PIL import Image

from tests.helpers import skipfold

pytestmark = pytest.mark.e2e


def test_probe_writes_table_json_and_plot(tmp_path):
    json_path, png_path = tmp_path / "out" / "probe.json", tmp_path / "out" / "probe.png"
    args = ["--variant", "none", "--depth", "16", "--batch", "8"]
    result = skipfold("probe", *args, "--json", str(json_path), "--plot", str(png_path))
    assert result.returncode == 0, result.stderr
    assert "WRN-16-1 none" in result.stdout and "branch_var" in result.stdout
    document = json.loads(json_path.read_text())
    assert document["variant"] == "none" and document["depth"] == 16
    assert len(document["blocks"]) == 6
    assert all(b["out_var"] > b["skip_var"] > 0 for b in document["blocks"])
    with Image.open(png_path) as image:
        assert image.format == "PNG" and image.width > 600
    assert sorted(p.name for p in json_path.parent.iterdir()) == ["probe.json", "probe.png"]


def test_probe_compare_covers_every_variant(tmp_path):
    json_path = tmp_path / "compare.json"
    result = skipfold("probe", "--compare", "--depth", "10", "--batch", "4", "--json", json_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(json_path.read_text())
    variants = [r["variant"] for r in document["variants"]]
    assert variants == ["bn", "skipinit", "skipinit-reg", "none", "none-scaled"]
    for variant in variants:
        assert variant in result.stdout
