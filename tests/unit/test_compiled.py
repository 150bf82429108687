"""The optional mypyc build's guard: a compiled module whose source changed stops the import loudly;
``OMS_COMPILED=0`` loads the sources instead. The files here are stand-ins (an empty "extension"),
so these tests say the same whether or not ``make compile`` was run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oms_streams import compiled
from oms_streams.compiled import FIX, GROUP, MODULES, StaleBuild, digest, guard, module_of, stale
from oms_streams.domain.inventory import StockPosition

EXT = ".cpython-311-x86_64-linux-gnu.so"


def tree(tmp_path: Path, source: str = "X = 1\n") -> tuple[Path, Path]:
    """A root holding oms_streams/domain/inventory.py, its "extension" and a manifest that matches."""
    package = tmp_path / "oms_streams" / "domain"
    package.mkdir(parents=True)
    (package / "inventory.py").write_text(source)
    (package / f"inventory{EXT}").write_bytes(b"")
    (tmp_path / "oms_streams" / f"native__mypyc{EXT}").write_bytes(b"")
    manifest = tmp_path / "compiled.json"
    manifest.write_text(json.dumps({"oms_streams.domain.inventory": digest(package / "inventory.py")}))
    return tmp_path, manifest


def test_no_extensions_nothing_to_check(tmp_path: Path) -> None:
    (tmp_path / "oms_streams").mkdir()
    (tmp_path / "oms_streams" / "x.py").write_text("")
    assert stale(tmp_path, tmp_path / "absent.json") == []


def test_a_build_that_matches_its_sources_passes(tmp_path: Path) -> None:
    root, manifest = tree(tmp_path)
    assert stale(root, manifest) == []
    guard(root, manifest)


def test_an_edited_source_is_stale_and_stops_the_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMS_COMPILED", raising=False)
    root, manifest = tree(tmp_path)
    (root / "oms_streams" / "domain" / "inventory.py").write_text("X = 2\n")
    assert stale(root, manifest) == ["oms_streams.domain.inventory: its source changed after it was compiled"]
    with pytest.raises(StaleBuild, match="inventory: its source changed") as raised:
        guard(root, manifest)
    assert FIX in str(raised.value)
    assert isinstance(raised.value, ImportError)


def test_a_missing_manifest_a_module_not_in_it_and_a_deleted_source_are_stale(tmp_path: Path) -> None:
    root, manifest = tree(tmp_path)
    assert stale(root, root / "absent.json") == [
        "absent.json is missing or unreadable beside 2 compiled module(s)"
    ]
    (root / "oms_streams" / "domain" / f"ledger{EXT}").write_bytes(b"")
    (root / "oms_streams" / "domain" / "inventory.py").unlink()
    assert stale(root, manifest) == [
        "oms_streams.domain.inventory: compiled, but its source inventory.py is gone",
        "oms_streams.domain.ledger: compiled, but not by the last `make compile`",
    ]


def test_oms_compiled_0_skips_the_check_and_loads_the_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, manifest = tree(tmp_path)
    (root / "oms_streams" / "domain" / "inventory.py").write_text("X = 2\n")
    monkeypatch.setenv("OMS_COMPILED", "0")
    # without the finder of this process (there is one when the tests themselves run with OMS_COMPILED=0)
    monkeypatch.setattr(
        sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, compiled._SourcesFirst)]
    )
    guard(root, manifest)
    finder = sys.meta_path[0]
    spec = finder.find_spec("oms_streams.domain.inventory", None)  # type: ignore[union-attr]
    assert spec.origin == str(root / "oms_streams" / "domain" / "inventory.py")
    assert finder.find_spec("oms_streams.domain.orders", None) is None  # type: ignore[union-attr]
    guard(root, manifest)
    assert sum(isinstance(f, type(finder)) for f in sys.meta_path) == 1


def test_module_names_of_extensions(tmp_path: Path) -> None:
    assert (
        module_of(tmp_path / "oms_streams" / "domain" / f"inventory{EXT}", tmp_path)
        == "oms_streams.domain.inventory"
    )
    assert module_of(tmp_path / "oms_streams" / f"native__mypyc{EXT}", tmp_path) == f"{GROUP}__mypyc"


def test_the_listed_modules_exist() -> None:
    assert all(compiled.source_of(m).exists() for m in MODULES)


def test_oms_compiled_0_imports_every_listed_module_from_its_source() -> None:
    code = (
        "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]; "
        "from oms_streams.compiled import compiled; print(compiled())"
    )
    env = {**os.environ, "OMS_COMPILED": "0"}
    out = subprocess.run(
        [sys.executable, "-c", code, *MODULES], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_values_compare_and_hash_by_their_fields_compiled_or_not() -> None:
    a, b = StockPosition(on_hand=3, holds=(("r1", 1),)), StockPosition(on_hand=3, holds=(("r1", 1),))
    assert a == b and hash(a) == hash(b) and a is not b
    assert a != StockPosition(on_hand=4)
    assert not hasattr(a, "__dict__")  # slotted, or a native class
