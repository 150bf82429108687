"""``python -m oms_streams.tools.compile [--clean]``: the optional mypyc build (``make compile``).

Compiles ``oms_streams.compiled.MODULES`` in place with mypyc (a C compiler and the dev extras'
mypy are needed), then writes the manifest of their sources' hashes that ``oms_streams.compiled``
checks at import. ``--clean`` deletes the extensions and the manifest (``make uncompile``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

from oms_streams.compiled import GROUP, MANIFEST, MODULES, PACKAGE_DIR, digest, extensions, source_of

ROOT = PACKAGE_DIR.parent


def clean() -> None:
    for extension in extensions():
        extension.unlink()
    MANIFEST.unlink(missing_ok=True)
    shutil.rmtree(ROOT / "build" / "mypyc", ignore_errors=True)


def build() -> None:
    from mypyc.build import mypycify  # the dev extras' mypy; imported here so the runtime never needs it
    from setuptools import setup  # type: ignore[import-untyped]

    clean()  # nothing of an earlier build survives a failed one
    started = time.monotonic()
    os.chdir(ROOT)  # mypy reads its settings from pyproject.toml there
    sources = [str(source_of(m).relative_to(ROOT)) for m in MODULES]
    setup(
        name="oms-streams-compiled",
        ext_modules=mypycify(sources, group_name=GROUP, target_dir="build/mypyc"),
        script_args=["--quiet", "build_ext", "--inplace", "--build-temp", "build/mypyc/temp"],
    )
    MANIFEST.write_text(json.dumps({m: digest(source_of(m)) for m in MODULES}, indent=1) + "\n")
    print(
        f"compiled {len(MODULES)} modules in {time.monotonic() - started:.0f} s; OMS_COMPILED=0 ignores them"
    )


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m oms_streams.tools.compile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--clean", action="store_true", help="delete the compiled modules and the manifest")
    if p.parse_args().clean:
        clean()
    else:
        build()


if __name__ == "__main__":
    main()
