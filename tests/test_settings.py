"""Settings come from the environment: the seed's names, MONACO_-prefixed ones, lists and JSON."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from monaco.core.settings import Settings


def test_seed_names_and_prefixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9090")
    monkeypatch.setenv("MAX_WORKERS", "7")
    monkeypatch.setenv("MONACO_QUEUE_SIZE", "5")
    monkeypatch.setenv("DEFAULT_LANGUAGE", "cpp")
    s = Settings()
    assert (s.port, s.max_workers, s.queue_size, s.default_language) == (9090, 7, 5, "cpp")


def test_lists_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONACO_IMAGE_PULL_SECRETS", "regcred, other")
    monkeypatch.setenv("MONACO_SANDBOX_NODE_SELECTOR", '{"pool": "sandbox"}')
    monkeypatch.setenv("MONACO_SANDBOX_TOLERATIONS", '[{"key": "sandbox", "operator": "Exists"}]')
    monkeypatch.setenv("MONACO_RUNTIME_CLASS_NAME", "")
    s = Settings()
    assert s.image_pull_secrets == ["regcred", "other"]
    assert s.sandbox_node_selector == {"pool": "sandbox"}
    assert s.sandbox_tolerations[0]["key"] == "sandbox"
    assert s.runtime_class_name is None
    monkeypatch.setenv("MONACO_IMAGE_PULL_SECRETS", '["a"]')
    assert Settings().image_pull_secrets == ["a"]


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_WORKERS", "0")
    with pytest.raises(ValidationError, match="MAX_WORKERS"):
        Settings()
