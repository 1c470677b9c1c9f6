"""Atomic file writes: single files (temporary file, then rename) and folders with a SHA-256
manifest written last, published in one rename; ``verify`` checks a folder against its
manifest; JSON encoding of NumPy values and paths.

Temporary names carry their owner: ``.NAME.tmp-HOST-PID-RANDOM`` (and ``.NAME.old-…`` for a
bundle being replaced), HOST being 8 hex digits of this machine's name. A process killed
mid-write (kill -9, power loss) leaves such a sibling, never a complete-looking ``NAME``; every
later write into the same folder removes the ones it can prove dead — same host, owner pid no
longer running — and leaves alone any other (an owner alive, another host, an older unowned
name), which it logs.

Fault injection for tests: with ``BAYES_ABLATION_FAULT=<step>`` in the environment the process
ends at once (``os._exit(86)``, no clean-up, as a kill would) when it reaches that step:
``folder-created``, ``folder-written`` (contents written, no manifest yet), ``manifest-written``,
``old-moved`` (replacing: the previous bundle moved aside, the new one not yet in place),
``published``, ``file-written`` (single file written, not yet renamed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bayes_ablation.errors import BundleError

if TYPE_CHECKING:
    pass


MANIFEST = "MANIFEST.json"
#: exit status of a process stopped by the fault-injection hook
FAULT_EXIT = 86
_log = logging.getLogger("bayes_ablation")
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_OWNED = re.compile(r"^\..+\.(?:tmp|old)-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8}$")
_UNOWNED = re.compile(r"^\..+\.(?:tmp|old)-[0-9a-f]{8}$")


def fault_point(step: str) -> None:
    """End the process now, as a kill would, when ``BAYES_ABLATION_FAULT`` names ``step``."""
    if os.environ.get("BAYES_ABLATION_FAULT") == step:
        os._exit(FAULT_EXIT)


def temporary_sibling(path: Path, kind: str = "tmp") -> Path:
    """``.NAME.<kind>-HOST-PID-RANDOM`` next to ``path`` (see the module docstring)."""
    return path.parent / f".{path.name}.{kind}-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(parent: Path) -> list[Path]:
    """Remove the temporary siblings in ``parent`` whose owner is provably dead; return them."""
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _OWNED.match(entry.name)
        if m is None:
            if _UNOWNED.match(entry.name):
                _log.warning("left alone %s: a temporary without an owner record (written by an "
                             "older version?); remove it by hand if no write is running", entry)
            continue
        if m["host"] != _HOST or _pid_alive(int(m["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        _log.info("removed %s, left by process %s which is no longer running", entry, m["pid"])
        removed.append(entry)
    return removed


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
    return atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write a single file atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent)
    tmp = temporary_sibling(path)
    try:
        tmp.write_bytes(data)
        fault_point("file-written")
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
        old = temporary_sibling(out, "old")
        os.rename(out, old)
        fault_point("old-moved")
        os.rename(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, out)
    fault_point("published")
    return out


def atomic_folder(out: str | Path, write: Callable[[Path], None], *, force: bool = False) -> Path:
    """Run ``write(tmp_folder)``, add the manifest, then publish to ``out`` in one rename."""
    out = check_destination(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out.parent)
    tmp = temporary_sibling(out)
    tmp.mkdir()
    try:
        fault_point("folder-created")
        write(tmp)
        fault_point("folder-written")
        write_manifest(tmp)
        fault_point("manifest-written")
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
