"""Atomic file writes: single files (temporary file, then rename) and folders with a SHA-256
manifest written last, published in one rename; ``verify`` checks a folder against its
manifest; JSON encoding of NumPy values and paths."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bayes_ablation.errors import BundleError

if TYPE_CHECKING:
    pass


MANIFEST = "MANIFEST.json"


def check_destination(out: str | Path, force: bool) -> Path:
    """Fail early (before any fitting) when ``out`` exists and ``force`` is not set."""
    out = Path(out)
    if out.exists() and not force:
        raise BundleError(f"{out} exists already; choose another --out or pass --force "
                          "to replace it")
    if out.exists() and not (out / MANIFEST).exists() and any(out.iterdir()):
        raise BundleError(f"{out} exists and is not a result bundle (no {MANIFEST}); "
                          "refusing to replace it even with --force")
    return out


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a single file atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {str(p.relative_to(folder)): sha256_file(p) for p in files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def publish(tmp: Path, out: Path, force: bool) -> Path:
    """Move a completed temporary folder to ``out`` (replacing a bundle only with force)."""
    if out.exists():
        if not force:
            raise BundleError(f"{out} appeared while writing; refusing to overwrite")
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)
    return out


def atomic_folder(out: str | Path, write: Callable[[Path], None], *, force: bool = False) -> Path:
    """Run ``write(tmp_folder)``, add the manifest, then publish to ``out`` in one rename."""
    out = check_destination(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        write(tmp)
        write_manifest(tmp)
        return publish(tmp, out, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def verify(bundle: str | Path) -> None:
    """Check that a bundle is complete and unmodified (every manifest hash matches)."""
    bundle = Path(bundle)
    manifest_path = bundle / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{bundle} is not a complete result bundle (no {MANIFEST})")
    manifest = json.loads(manifest_path.read_text())
    for rel, digest in manifest.items():
        path = bundle / rel
        if not path.is_file():
            raise BundleError(f"{bundle}: {rel} listed in {MANIFEST} is missing")
        if sha256_file(path) != digest:
            raise BundleError(f"{bundle}: {rel} does not match its SHA-256 in {MANIFEST}")
