"""The optional mypyc build of the ledger's hot modules, and its guard against stale builds.

``make compile`` (``python -m oms_streams.tools.compile``) compiles ``MODULES`` with mypyc into C
extensions next to their sources (``inventory.cpython-311-x86_64-linux-gnu.so`` beside
``inventory.py``, their shared code in ``oms_streams/native__mypyc.*.so``) and writes ``MANIFEST``:
the SHA-256 of each compiled module's source. Python imports an extension in preference to the
``.py`` beside it, so an edited source would silently run as its old compiled self; ``guard()``,
run when ``oms_streams`` is imported, refuses that: an extension whose source no longer matches
the manifest stops the import with how to fix it. ``OMS_COMPILED=0`` makes every listed module
load from its ``.py`` instead (the extensions stay on disk, ignored). ``make uncompile`` deletes them.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST = PACKAGE_DIR / "compiled.json"
GROUP = "oms_streams.native"
"""mypyc's group name: its shared library is the module ``oms_streams.native__mypyc``, inside the
package, so it imports wherever ``oms_streams`` does (a checkout on the path or ``pip install -e``)."""

MODULES = (
    "oms_streams.domain.inventory",
    "oms_streams.domain.visibility",
    "oms_streams.domain.ledger",
    "oms_streams.domain.forecast",
    "oms_streams.domain.protection",
    "oms_streams.domain.reservations",
    "oms_streams.adapters.stock",
    "oms_streams.adapters.availability",
    "oms_streams.adapters.timestamps",
    "oms_streams.adapters.reservations",
    "oms_streams.streaming.ledger_runtime",
    "oms_streams.streaming.ledger_store",
    "oms_streams.streaming.event_ids",
    "oms_streams.streaming.preorder_arrivals",
    "oms_streams.streaming.outbox",
    "oms_streams.streaming.partitioning",
    "oms_streams.streaming.shedding",
    "oms_streams.streaming.network",
    "oms_streams.streaming.holds",
)
"""The ledger's hot path (``bench/README.md``, "mypyc"). Not ``streaming/ledger_engine.py``: mypyc
2.4.1 crashes on it (``ValueError: non-default argument follows default argument``)."""

FIX = (
    "run `make compile` again to rebuild them, `make uncompile` to delete them, "
    "or set OMS_COMPILED=0 to ignore them"
)


class StaleBuild(ImportError):
    pass


def source_of(module: str, root: Path = PACKAGE_DIR.parent) -> Path:
    return root.joinpath(*module.split(".")).with_suffix(".py")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extensions(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """Every C extension under the package (there are none unless ``make compile`` made them)."""
    suffixes = importlib.machinery.EXTENSION_SUFFIXES
    return sorted({p for suffix in suffixes for p in package_dir.rglob(f"*{suffix}")})


def module_of(extension: Path, root: Path) -> str:
    name = extension.name
    stem = name.split(".", 1)[0]  # inventory.cpython-311-x86_64-linux-gnu.so, inventory.abi3.so, inventory.so
    return ".".join((*extension.parent.relative_to(root).parts, stem))


def stale(root: Path = PACKAGE_DIR.parent, manifest: Path = MANIFEST) -> list[str]:
    """What is wrong with the compiled modules under ``root``, one line each; empty when none."""
    found = extensions(root / "oms_streams")
    if not found:
        return []
    try:
        built: dict[str, str] = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return [f"{manifest.name} is missing or unreadable beside {len(found)} compiled module(s)"]
    problems = []
    for extension in found:
        module = module_of(extension, root)
        if module == f"{GROUP}__mypyc":
            continue
        source = source_of(module, root)
        if module not in built:
            problems.append(f"{module}: compiled, but not by the last `make compile`")
        elif not source.exists():
            problems.append(f"{module}: compiled, but its source {source.name} is gone")
        elif digest(source) != built[module]:
            problems.append(f"{module}: its source changed after it was compiled")
    return problems


class _SourcesFirst:
    """A meta path finder that loads ``MODULES`` from their ``.py`` files (``OMS_COMPILED=0``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name not in MODULES:
            return None
        return importlib.util.spec_from_file_location(name, source_of(name, self.root))


def guard(root: Path = PACKAGE_DIR.parent, manifest: Path = MANIFEST) -> None:
    """Called by ``oms_streams/__init__.py``: ignore the compiled modules, or make sure they are current."""
    if os.environ.get("OMS_COMPILED", "1") == "0":
        if not any(isinstance(f, _SourcesFirst) for f in sys.meta_path):
            sys.meta_path.insert(0, _SourcesFirst(root))
        return
    problems = stale(root, manifest)
    if problems:
        raise StaleBuild("oms_streams: stale mypyc build (" + "; ".join(problems) + "): " + FIX)


def compiled() -> list[str]:
    """The listed modules that were imported from a C extension in this process."""
    return [
        m
        for m in MODULES
        if (mod := sys.modules.get(m)) is not None and not str(mod.__file__).endswith(".py")
    ]
