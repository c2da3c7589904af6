"""What the server loads from a repository, and the one-line reasons it refuses to start."""

import shutil

import onnx
import pytest

from skipfold.formats.model_config import RepositoryError
from skipfold.formats.model_repository import ModelRepository
from skipfold.service.registry import ModelNotFound, ModelRegistry
from skipfold.service.settings import Settings
from tests.tiny_models import CLASSES, card, model_bytes


def load(repo, **settings) -> ModelRegistry:
    return ModelRegistry.load(Settings(repository=repo, intra_op_threads=1, **settings))


def test_every_model_at_its_latest_version_with_its_card(repo):
    registry = load(repo)
    assert registry.default == "bn"
    assert {m.name: m.version for m in registry.all()} == {
        "bn": 2,
        "bn-unfolded": 1,
        "plain": 1,
        "skipinit": 1,
    }
    skipinit = registry.get("skipinit")
    assert skipinit.card == card("skipinit")
    assert (skipinit.input_size, skipinit.max_batch_size) == ((32, 32), 64)
    assert skipinit.describe()["folded"] is True


def test_a_model_with_test_time_flips_says_so(tmp_path):
    flipped = card("bn").model_copy(update={"test_flip": True})
    repository = ModelRepository(tmp_path)
    publish = {"classes": CLASSES, "input_size": (32, 32), "max_batch_size": 64}
    repository.publish("bn-flip", model_bytes(1, flipped), **publish)
    repository.publish("bn", model_bytes(1, card("bn")), **publish)
    registry = load(tmp_path)
    assert registry.get("bn-flip").describe()["test_flip"] is True
    assert registry.get("bn").describe()["test_flip"] is False


def test_a_model_without_a_card_takes_its_classes_from_labels_txt(repo):
    plain = load(repo, models="plain").get()
    assert plain.card is None and plain.classes == CLASSES
    assert plain.describe()["variant"] is None


def test_pinned_versions_and_lookups(repo):
    registry = load(repo, models="bn:1:2,skipinit", default_model="skipinit")
    assert registry.get().name == "skipinit"
    assert registry.get("bn").version == 2 and registry.get("bn", "1").version == 1
    with pytest.raises(ModelNotFound, match="no version 7"):
        registry.get("bn", 7)
    with pytest.raises(ModelNotFound, match="unknown model 'nope'"):
        registry.get("nope")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"models": "nope"}, "model 'nope' is not in"),
        ({"models": "bn:9"}, "has no version 9"),
        ({"models": "bn", "default_model": "skipinit"}, "default model 'skipinit' is not served"),
    ],
)
def test_a_selection_the_repository_cannot_meet_is_refused(repo, settings, message):
    with pytest.raises(RepositoryError, match=message):
        load(repo, **settings)


def test_models_the_server_cannot_run_are_refused_with_the_reason(tmp_path, repo):
    corrupt = tmp_path / "corrupt"
    shutil.copytree(repo / "skipinit", corrupt / "m")
    (corrupt / "m" / "1" / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(RepositoryError, match="ONNX Runtime cannot load it"):
        load(corrupt)

    model = onnx.load_from_string(model_bytes(0, None))
    onnx.helper.set_model_props(model, card("bn").to_metadata() | {"depth": "deep"})
    repository = ModelRepository(tmp_path / "bad-card")
    repository.publish(
        "m", model.SerializeToString(), classes=CLASSES, input_size=(32, 32), max_batch_size=4
    )
    with pytest.raises(RepositoryError, match="depth is not JSON"):
        load(repository.path)

    (tmp_path / "empty").mkdir()
    with pytest.raises(RepositoryError, match="holds no models"):
        load(tmp_path / "empty")


def test_a_minimal_config_pbtxt_as_triton_accepts_it_is_served(tmp_path, repo):
    shutil.copytree(repo / "skipinit", tmp_path / "m")
    (tmp_path / "m" / "config.pbtxt").write_text(
        'platform: "onnxruntime_onnx"\nmax_batch_size: 8\n'
    )
    served = load(tmp_path).get("m")
    assert served.max_batch_size == 8 and served.input_size == (32, 32)
    assert served.classes == CLASSES  # from the model card
