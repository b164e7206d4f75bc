"""Fixtures: the rendered variants (render.py) and the server's route table (openapi.json)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import render

OPENAPI_DEFAULT = render.REPO_ROOT / "server" / "openapi.json"


@pytest.fixture(scope="session")
def routes() -> frozenset[str]:
    """The `paths` keys of the server's OpenAPI document: its route table. QUARRY_OPENAPI
    overrides the location (e.g. to test the manifests before the server's document exists)."""
    path = Path(os.environ.get("QUARRY_OPENAPI", OPENAPI_DEFAULT))
    if not path.is_file():
        pytest.fail(f"route table {path} not found (set QUARRY_OPENAPI to another copy)", pytrace=False)
    try:
        paths = json.loads(path.read_text())["paths"]
    except (ValueError, KeyError) as e:
        pytest.fail(f"{path}: not an OpenAPI document with `paths`: {e}", pytrace=False)
    return frozenset(paths)


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """Variant name -> its rendered documents, each rendered once per session."""
    return {v.name: [d for d in yaml.safe_load_all(render.render(v)) if d] for v in render.VARIANTS}
