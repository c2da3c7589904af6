"""The model card: written into ONNX metadata as strings, read back as the same card."""

import json

import onnxruntime as ort
import pytest

from skipfold.formats.model_card import CARD_KEY, ModelCard
from tests.tiny_models import card, model_bytes


def test_metadata_round_trip_through_an_onnx_file(tmp_path):
    written = card("skipinit")
    path = tmp_path / "model.onnx"
    path.write_bytes(model_bytes(0, written))
    assert ModelCard.read(path) == written
    metadata = ort.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    # what Netron, onnx and Triton's GET .../config show: plain strings
    assert metadata[CARD_KEY] == "1"
    assert (metadata["variant"], metadata["depth"], metadata["folded"]) == (
        "skipinit",
        "10",
        "true",
    )
    assert json.loads(metadata["classes"])[8] == "star"


def test_a_model_without_a_card_has_none(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(model_bytes(0, None))
    assert ModelCard.read(path) is None
    assert ModelCard.from_metadata({"author": "someone else"}) is None


def test_skipfold_0_1_metadata_reads_as_a_card():
    legacy = {  # keys and encodings skipfold 0.1 wrote, without the card's version key
        "classes": '["a", "b"]',
        "variant": "bn",
        "depth": "16",
        "width": "4",
        "folded": "false",
        "test_accuracy": "0.912500",
        "dataset": "shapes",
        "input_size": "[32, 32]",
        "mean": "[0.5, 0.5, 0.5]",
        "std": "[0.2, 0.2, 0.2]",
        "standardize": "dataset",
        "source_run": "bn-16-4",
        "weights_sha256": "ab" * 32,
        "skipfold_version": "0.1.0",
        "exporter": "torch 2.13.0, onnx 1.23.2",
        "parameters": "2748890",
        "flops_per_image": "785000000",
        "op_counts": '{"Conv": 19}',
        "op_counts_unfolded": '{"Conv": 19}',
        "verification": '{"images": 64, "max_abs_logit_diff": 1e-05, '
        '"max_abs_probability_diff": 1e-07, "top1_agreement": 1.0, "tolerance": 0.0001}',
    }
    read = ModelCard.from_metadata(legacy)
    assert (read.kind, read.depth, read.test_accuracy) == ("bn-unfolded", 16, 0.9125)
    assert read.verification.images == 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({CARD_KEY: "7"}, "newer than this skipfold"),
        ({"depth": "sixteen"}, "depth is not JSON"),
        ({"folded": "3"}, "folded"),
        ({"classes": ""}, "classes"),
    ],
)
def test_an_unreadable_card_is_a_clear_error(change, message):
    metadata = card("bn").to_metadata() | change
    with pytest.raises(ValueError, match=message):
        ModelCard.from_metadata(metadata, source="m.onnx")


def test_kind_names_what_the_latency_comparison_compares():
    assert [card(v, f).kind for v, f in (("bn", True), ("bn", False), ("skipinit", True))] == [
        "bn-folded",
        "bn-unfolded",
        "skipinit",
    ]
