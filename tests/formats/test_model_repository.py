"""The Triton-layout repository: accepted by Triton's own config schema, versioned, atomic."""

import importlib.util
import stat
from pathlib import Path

import pytest
import tritonclient
from google.protobuf import text_format

from skipfold.formats import model_repository as repository
from skipfold.formats.model_config import ModelConfig, RepositoryError
from skipfold.formats.model_repository import ModelRepository

CLASSES = ["cat", "dog", "bird"]


def triton_model_config():
    """Triton's ModelConfig message, from the model_config.proto shipped in tritonclient."""
    path = Path(tritonclient.__file__).parent / "grpc" / "model_config_pb2.py"
    spec = importlib.util.spec_from_file_location("triton_model_config_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ModelConfig()


def publish(repo, name="m", data=b"onnx-1", **overrides):
    options = {"classes": CLASSES, "input_size": (32, 32), "max_batch_size": 16} | overrides
    return ModelRepository(repo).publish(name, data, **options)


def test_config_pbtxt_parses_as_a_triton_model_config(tmp_path):
    publish(tmp_path)
    config = text_format.Parse((tmp_path / "m" / "config.pbtxt").read_text(), triton_model_config())
    assert config.name == "m"
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 16
    assert config.version_policy.HasField("all")
    (image,) = config.input
    assert (image.name, list(image.dims)) == ("images", [32, 32, 3])
    assert (
        image.data_type
        == type(config)
        .DESCRIPTOR.fields_by_name["input"]
        .message_type.fields_by_name["data_type"]
        .enum_type.values_by_name["TYPE_UINT8"]
        .number
    )
    assert [(o.name, list(o.dims)) for o in config.output] == [
        ("logits", [3]),
        ("probabilities", [3]),
    ]
    assert config.output[1].label_filename == "labels.txt"
    assert (tmp_path / "m" / "labels.txt").read_text().splitlines() == CLASSES


def test_each_export_adds_the_next_version_and_never_rewrites_one(tmp_path):
    assert publish(tmp_path, data=b"first")[0] == 1
    assert publish(tmp_path, data=b"second")[0] == 2
    assert (tmp_path / "m" / "1" / "model.onnx").read_bytes() == b"first"
    assert (tmp_path / "m" / "2" / "model.onnx").read_bytes() == b"second"
    assert ModelRepository(tmp_path).versions("m") == [1, 2]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "1",
        "2",
        "config.pbtxt",
        "labels.txt",
    ]


def test_published_files_are_readable_by_other_users(tmp_path):
    _, path = publish(tmp_path)
    for p in (path, path.parent, path.parent.parent):
        assert p.stat().st_mode & stat.S_IROTH


def test_a_different_signature_under_the_same_name_is_refused(tmp_path):
    publish(tmp_path)
    with pytest.raises(ValueError, match="another --name"):
        publish(tmp_path, classes=["a", "b"])
    assert ModelRepository(tmp_path).versions("m") == [1]


def test_what_publish_would_refuse_is_said_before_any_work_and_writes_nothing(tmp_path):
    publish(tmp_path)
    repo = ModelRepository(tmp_path)
    options = {"classes": CLASSES, "input_size": (32, 32), "max_batch_size": 16}
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    repo.check_publishable("m", **options)  # a next version of the same signature
    repo.check_publishable("new", **options)
    with pytest.raises(ValueError, match=r"different signature.*precision"):
        repo.check_publishable("m", **options, parameters={"precision": "fp16"})
    with pytest.raises(ValueError, match=r"different signature.*test-time flips"):
        repo.check_publishable("m", **options, parameters={"test_flip": "true"})
    with pytest.raises(ValueError, match="name"):
        repo.check_publishable("../m", **options)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    (tmp_path / "m" / "labels.txt").unlink()  # a folder made by hand, without labels.txt
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    repo.check_publishable("m", **options)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    publish(tmp_path)  # publishing writes it
    assert (tmp_path / "m" / "labels.txt").read_text().split() == CLASSES
    (tmp_path / "m" / "config.pbtxt").write_text("max_batch_size: {{{")
    with pytest.raises(ValueError, match=r"config\.pbtxt"):  # the CLI's one line, no traceback
        repo.check_publishable("m", **options)


def test_a_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    def disk_full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(repository, "_write_durably", disk_full)
    with pytest.raises(OSError):
        publish(tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    publish(tmp_path)
    monkeypatch.setattr(repository, "_write_durably", disk_full)
    with pytest.raises(OSError):
        publish(tmp_path)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "config.pbtxt", "labels.txt"]


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden", "sp ace"])
def test_unsafe_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="invalid model name"):
        publish(tmp_path, name=name)


def test_the_config_reads_back_as_written_and_as_skipfold_0_1_wrote_it(tmp_path):
    publish(tmp_path)
    repo = ModelRepository(tmp_path)
    assert repo.config("m") == ModelConfig("m", 16, (32, 32), 3)
    assert repo.labels("m") == CLASSES
    assert repo.models() == {"m": [1]}
    legacy = (  # the template skipfold 0.1 wrote, which Triton reads too
        'name: "m"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 16\n'
        'version_policy: { all: {} }\ninput [\n  {\n    name: "images"\n'
        "    data_type: TYPE_UINT8\n    format: FORMAT_NHWC\n    dims: [ 32, 32, 3 ]\n  }\n]\n"
        'output [\n  {\n    name: "logits"\n    data_type: TYPE_FP32\n    dims: [ 3 ]\n  },\n'
        '  {\n    name: "probabilities"\n    data_type: TYPE_FP32\n    dims: [ 3 ]\n'
        '    label_filename: "labels.txt"\n  }\n]\n'
    )
    assert ModelConfig.parse(legacy) == ModelConfig("m", 16, (32, 32), 3)


def test_fields_triton_users_add_are_skipped_and_a_broken_config_is_a_clear_error(tmp_path):
    text = ModelConfig("m", 8, (24, 24), 5).to_pbtxt() + (
        "dynamic_batching { max_queue_delay_microseconds: 100 preferred_batch_size: [ 4, 8 ] }\n"
        "instance_group [ { count: 2 kind: KIND_CPU } ]\n"
        'parameters { key: "intra_op_thread_count" value: { string_value: "1" } }\n'
    )
    parsed = ModelConfig.parse(text)
    assert parsed == ModelConfig("m", 8, (24, 24), 5, parameters=(("intra_op_thread_count", "1"),))
    assert parsed.signature() == ModelConfig("m", 8, (24, 24), 5).signature()  # fp32 either way
    int8 = ModelConfig("m", 8, (24, 24), 5, parameters=(("precision", "int8"),))
    assert ModelConfig.parse(int8.to_pbtxt()) == int8
    assert int8.signature() != parsed.signature()
    with pytest.raises(RepositoryError, match=r"not a valid config\.pbtxt"):
        ModelConfig.parse("max_batch_size: 'eight'")
    # Triton completes a minimal config from the model itself; the reader takes it too
    minimal = ModelConfig.parse('name: "m"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 8\n')
    assert (minimal.max_batch_size, minimal.input_size, minimal.num_classes) == (8, None, None)


def test_a_new_version_skips_a_numbered_folder_that_holds_no_model(tmp_path):
    publish(tmp_path)
    (tmp_path / "m" / "2").mkdir()
    (tmp_path / "m" / "2" / "notes.txt").write_text("not a model")
    assert publish(tmp_path)[0] == 3
    assert ModelRepository(tmp_path).versions("m") == [1, 3]


def test_versions_and_models_ignore_what_is_not_a_version(tmp_path):
    publish(tmp_path)
    (tmp_path / "m" / "0").mkdir()  # Triton's versions start at 1
    (tmp_path / "m" / "²").mkdir()  # a digit to str.isdigit(), not to int()
    (tmp_path / "m" / "3").mkdir()  # no model.onnx
    (tmp_path / ".m.tmp").mkdir()  # an export in progress
    (tmp_path / "notes").mkdir()  # no config.pbtxt
    assert ModelRepository(tmp_path).models() == {"m": [1]}


def test_a_path_that_is_a_file_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for path in (blocker, blocker / "repo"):
        with pytest.raises(ValueError, match="is a file"):
            ModelRepository(path).check_writable()
    with pytest.raises(RepositoryError, match="does not exist"):
        ModelRepository(tmp_path / "missing").models()
