"""Every file generated from core/, written in one go: `make generate` (`python -m monaco.core.generate`).

    python -m monaco.core.generate [ROOT]          # rewrite what is stale (ROOT: the checkout, default .)
    python -m monaco.core.generate --check [ROOT]  # exit 1 and name what is stale

| file | from |
|---|---|
| manifests/crd/, helm/monaco/crds/ | core/crd.py |
| manifests/languages.yaml | core/languages.yaml, byte for byte |
| helm/monaco/values.yaml, between its markers | core/languages.yaml, commented from core/languages.py |
| helm/monaco/values.schema.json, its language parts | core/languages.py, core/resource.py |
| helm/monaco/README.md | helm/monaco/gen-readme.py, from the values.yaml above |

tests/test_generated.py fails when any of them is stale.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from monaco.core import chart, crd

REGISTRY = Path("core/languages.yaml")
MANIFEST_REGISTRY = Path("manifests/languages.yaml")
VALUES = Path("helm/monaco/values.yaml")
VALUES_SCHEMA = Path("helm/monaco/values.schema.json")
CHART_README = Path("helm/monaco/README.md")
README_GENERATOR = Path("helm/monaco/gen-readme.py")
OUTPUTS = (*crd.OUTPUTS, MANIFEST_REGISTRY, VALUES, VALUES_SCHEMA, CHART_README)


def readme_generator(root: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("monaco_chart_gen_readme", root / README_GENERATOR)
    assert spec and spec.loader, f"cannot load {root / README_GENERATOR}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def render(root: Path) -> dict[Path, str]:
    """What every generated file (relative to root) should hold, from root's sources."""
    registry = (root / REGISTRY).read_text()
    readme = readme_generator(root)
    values = chart.render_values((root / VALUES).read_text(), registry, readme.documented_keys)
    files = {rel: crd.render_yaml() for rel in crd.OUTPUTS}
    files[MANIFEST_REGISTRY] = registry
    files[VALUES] = values
    files[VALUES_SCHEMA] = chart.render_values_schema((root / VALUES_SCHEMA).read_text())
    files[CHART_README] = readme.render(values)
    return files


def stale(root: Path, files: dict[Path, str]) -> list[Path]:
    """The files (relative to root) whose text on disk is not what `render` made."""
    return [rel for rel, text in files.items() if not (root / rel).is_file() or (root / rel).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monaco.core.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated file is stale")
    parser.add_argument("root", nargs="?", type=Path, default=Path.cwd(), help="the checkout (default: .)")
    args = parser.parse_args(argv)
    try:
        files = render(args.root)
    except chart.GeneratedFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    changed = stale(args.root, files)
    if args.check:
        for rel in changed:
            print(f"{rel} is stale: run `make generate`", file=sys.stderr)
        return 1 if changed else 0
    for rel in changed:
        path = args.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[rel])
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
