"""Files generated from core/ (core/generate.py) are current, and say what core/ says."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from monaco.core import chart, crd, generate
from monaco.core.languages import NAME_PATTERN, CompileLimits, Language, RunLimits
from tests.support import python

ROOT = Path(__file__).resolve().parent.parent


@cache
def rendered() -> dict[Path, str]:
    return generate.render(ROOT)


@pytest.mark.parametrize("rel", generate.OUTPUTS, ids=[str(p) for p in generate.OUTPUTS])
def test_generated_file_is_current(rel: Path) -> None:
    path = ROOT / rel
    assert path.is_file(), f"{rel} is missing: run `make generate`"
    assert path.read_text() == rendered()[rel], f"{rel} is stale: run `make generate`"


def test_check_names_a_stale_file_and_a_run_repairs_it(tmp_path: Path) -> None:
    sources = (generate.REGISTRY, generate.VALUES, generate.VALUES_SCHEMA, generate.README_GENERATOR)
    for rel in sources:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    registry = tmp_path / generate.REGISTRY
    registry.write_text(registry.read_text().replace("exec python3 main.py", "exec python3 -u main.py"))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(python("-m", "monaco.core.generate", *args, str(tmp_path)),
                              capture_output=True, text=True, timeout=60)

    check = run("--check")
    assert check.returncode == 1
    assert f"{generate.VALUES} is stale: run `make generate`" in check.stderr
    assert run().returncode == 0
    assert run("--check").returncode == 0, run("--check").stderr
    values = yaml.safe_load((tmp_path / generate.VALUES).read_text())
    assert values["languages"]["python"]["run"] == 'exec python3 -u main.py "$@"'
    assert (tmp_path / generate.MANIFEST_REGISTRY).read_text() == registry.read_text()


@pytest.mark.parametrize("model", [Language, RunLimits, CompileLimits], ids=lambda m: m.__name__)
def test_every_registry_field_is_described(model: type[BaseModel]) -> None:
    """The descriptions are values.yaml's comments and values.schema.json's descriptions."""
    assert [name for name, field in model.model_fields.items() if not field.description] == []


def test_a_registry_field_without_a_model_field_is_named() -> None:
    registry = (ROOT / generate.REGISTRY).read_text().replace("    run: exec python3", "    bogus: 1\n    run: python3")
    with pytest.raises(chart.GeneratedFileError, match=r"python\.bogus is not a field"):
        chart.languages_block(registry, generate.readme_generator(ROOT).documented_keys)


def test_the_name_pattern_is_written_once() -> None:
    """NAME_PATTERN lives in core/languages.py; the CRD and the chart's schema are generated from it."""
    spec = crd.render()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["properties"]["language"]["pattern"] == NAME_PATTERN
    schema = json.loads((ROOT / generate.VALUES_SCHEMA).read_text())
    assert schema["properties"]["languages"]["propertyNames"]["pattern"] == NAME_PATTERN
    assert schema["properties"]["defaultLanguage"]["pattern"] == NAME_PATTERN
    literal = NAME_PATTERN.strip("^$")
    generated = {ROOT / rel for rel in generate.OUTPUTS}
    sources = [p for folder in ("core", "api", "operator", "helm") for p in (ROOT / folder).rglob("*")
               if p.is_file() and p not in generated and p.suffix in (".py", ".yaml", ".json", ".tpl")]
    assert [str(p.relative_to(ROOT)) for p in sources if literal in p.read_text()] == []


ENTRY = {"displayName": "Python", "version": "3", "image": "python:3", "sourceFile": "main.py", "run": "exec python3"}


@pytest.mark.parametrize("change", [
    {},
    {"compile": None},
    {"compile": "exec true", "env": {"A": "1"}},
    {"limits": {"timeoutSeconds": 0.5, "maxMemoryMb": 1024}},
    {"compileLimits": {"outputFileMb": 1}},
    {"run": ""},
    {"image": ""},
    {"bogus": 1},
    {"sourceFile": "a/b.py"},
    {"imagePullPolicy": "Sometimes"},
    {"limits": {"timeoutSeconds": 0}},
    {"limits": {"timeoutSeconds": 301}},
    {"limits": {"memoryMb": "big"}},
    {"limits": {"processes": 5000}},
    {"compileLimits": {"timeoutSeconds": 601}},
    {"env": {"A": 1}},
    {"run": None},
], ids=repr)
def test_the_chart_schema_accepts_what_the_registry_accepts(change: dict[str, Any]) -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    schema = json.loads((ROOT / generate.VALUES_SCHEMA).read_text())
    language = {"$schema": schema["$schema"], "definitions": schema["definitions"], "$ref": chart.LANGUAGE_REF}
    validator = jsonschema_rs.validator_for(language)
    entry = {**ENTRY, **change}
    try:
        Language.model_validate({**entry, "name": "x"}, strict=False)
        model_accepts = True
    except ValidationError:
        model_accepts = False
    assert validator.is_valid(entry) == model_accepts
