"""schemas/, topologies/ and docs/openapi.json are generated from the code and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from oms_streams.tools.catalogue import generated_files

ROOT = Path(__file__).resolve().parents[2]


def test_generated_files_match_the_code() -> None:
    stale = [
        relative
        for relative, content in generated_files().items()
        if not (ROOT / relative).exists() or (ROOT / relative).read_text() != content
    ]
    assert not stale, f"run `make generate` and commit: {stale}"


def test_no_orphan_schema_files() -> None:
    expected = {p for p in generated_files() if p.startswith("schemas/")}
    actual = {f"schemas/{p.name}" for p in (ROOT / "schemas").glob("*.json")}
    assert actual == expected
