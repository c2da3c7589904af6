import pytest
from pydantic import ValidationError

from skipfold.service.settings import Settings


def test_environment_variables_with_the_skipfold_prefix(monkeypatch, tmp_path):
    monkeypatch.setenv("SKIPFOLD_REPOSITORY", str(tmp_path))
    monkeypatch.setenv("SKIPFOLD_PORT", "9001")
    monkeypatch.setenv("SKIPFOLD_API_KEY", "hunter2")
    monkeypatch.setenv("SKIPFOLD_MAX_BATCH_SIZE", "16")
    settings = Settings()
    assert settings.repository == tmp_path
    assert settings.port == 9001
    assert settings.api_key.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(settings)  # secrets stay out of logs
    assert settings.max_batch_size == 16
    assert Settings(port=9002).port == 9002  # explicit values (CLI flags) win


def test_defaults_and_validation(monkeypatch):
    monkeypatch.setenv("SKIPFOLD_API_KEY", "")
    for name in ("SKIPFOLD_DEVICE", "SKIPFOLD_CUDA_GRAPHS"):  # set by pytest --device cuda
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.api_key is None  # an empty key means no key
    assert (settings.device, settings.max_batch_size, settings.top_k) == ("cpu", 0, 5)
    assert settings.cuda_graphs is False
    assert settings.max_body_bytes == 10 * 1024 * 1024
    with pytest.raises(ValidationError):
        Settings(device="tpu")
    with pytest.raises(ValidationError):
        Settings(port=70000)


def test_model_selection_with_pinned_versions():
    assert Settings(models="bn, skipinit:1:3").pinned_versions() == {"bn": [], "skipinit": [1, 3]}
    assert Settings().pinned_versions() == {}
    with pytest.raises(ValueError, match="NAME:VERSION"):
        Settings(models="bn:latest").pinned_versions()
