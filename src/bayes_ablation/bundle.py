"""Result bundles: a folder written atomically (temporary folder, then one rename).

Layout::

    <out>/spec.toml          the analysis spec exactly as used
    <out>/posterior.nc       ArviZ DataTree (posterior, sample_stats, observed/constant data,
                             estimands) — or posterior.zarr
    <out>/estimands.csv      one row per scalar estimand
    <out>/<table>.csv        further tables a result adds (e.g. prior_sensitivity.csv)
    <out>/summary.json       estimands, probabilities, diagnostics, provenance
    <out>/report.html        self-contained report
    <out>/figures/*.png
    <out>/MANIFEST.json      SHA-256 of every file above, written last

A bundle either appears complete or not at all: a failure while writing removes the temporary
folder and leaves any existing ``<out>`` untouched. An existing ``<out>`` is replaced only with
``force=True``.
"""

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
    from bayes_ablation.analysis import Result

MANIFEST = "MANIFEST.json"
#: zlib level of the NetCDF posterior's numeric arrays (lossless; values, dtypes unchanged)
NETCDF_COMPLEVEL = 4


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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(folder: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    manifest = {str(p.relative_to(folder)): _sha256(p) for p in files}
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


def posterior_tree(result: Result) -> Any:
    """The DataTree saved in the bundle: the fit's groups plus an ``estimands`` group."""
    import xarray as xr

    groups = ({name: result.idata[name].to_dataset() for name in result.idata.children}
              if result.idata is not None else {})
    estimands = result.estimands.copy()
    estimands.attrs = {k: json.dumps(v) if isinstance(v, list | dict) else v
                       for k, v in estimands.attrs.items()}
    groups["estimands"] = estimands
    for name, extra in result.extras.get("groups", {}).items():   # e.g. exact posterior grids
        groups[name] = extra
    return xr.DataTree.from_dict(groups)


def netcdf_encoding(tree: Any, complevel: int = NETCDF_COMPLEVEL) -> dict[str, dict[str, Any]]:
    """Per-group, per-variable NetCDF encoding: zlib (with byte shuffle) for every non-empty,
    non-scalar numeric array; strings, scalars and empty arrays are stored as they are.
    Lossless: reading the file back gives the same values, bit for bit, and the same dtypes."""
    encoding: dict[str, dict[str, Any]] = {}
    for node in tree.subtree:
        ds = node.to_dataset(inherit=False)
        group = {name: {"zlib": True, "complevel": complevel, "shuffle": True}
                 for name, var in ds.variables.items()
                 if var.dtype.kind in "biufc" and var.ndim > 0 and var.size > 0}
        if group:
            encoding[node.path] = group
    return encoding


def write_bundle(result: Result, out: str | Path, *, force: bool = False,
                 posterior_format: str = "netcdf", spec_text: str | None = None,
                 progress: bool = False) -> Path:
    """Write ``result`` as a bundle at ``out`` (see module docstring)."""
    from bayes_ablation.report.html import render_report

    if posterior_format not in ("netcdf", "zarr"):
        raise BundleError(f"posterior_format must be 'netcdf' or 'zarr', got {posterior_format!r}")
    say = _progress_printer(progress)

    def write(tmp: Path) -> None:
        text = spec_text if spec_text is not None else spec_file_text(result.spec)
        (tmp / "spec.toml").write_text(text)
        say("writing posterior")
        tree = posterior_tree(result)
        if posterior_format == "netcdf":
            tree.to_netcdf(tmp / "posterior.nc", engine="h5netcdf",
                           encoding=netcdf_encoding(tree))
        else:
            tree.to_zarr(tmp / "posterior.zarr")
        result.estimand_table.to_csv(tmp / "estimands.csv", index=False)
        for name, frame in result.extras.get("tables", {}).items():   # e.g. prior sensitivity
            frame.to_csv(tmp / f"{name}.csv", index=False)
        (tmp / "summary.json").write_text(json.dumps(result.summary(), indent=2,
                                                     default=_json_default))
        say("rendering report")
        html_text, pngs = render_report(result, say if progress else None)
        figures = tmp / "figures"
        figures.mkdir()
        for name, png in pngs.items():
            (figures / f"{name}.png").write_bytes(png)
        (tmp / "report.html").write_text(html_text, encoding="utf-8")

    return atomic_folder(out, write, force=force)


def spec_file_text(spec: Any) -> str:
    """The spec as used: its original file (comments kept) when the content still matches the
    spec's hash, otherwise the spec regenerated from its (e.g. overridden) content."""
    import tomllib

    from bayes_ablation.spec import canonical_sha256

    src = Path(spec.source_path)
    if src.is_file():
        text = src.read_text()
        try:
            if canonical_sha256(tomllib.loads(text)) == spec.sha256:
                return text
        except tomllib.TOMLDecodeError:
            pass
    return f"# regenerated from the analysis as run (differs from {src})\n" + spec.to_toml_text()


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _progress_printer(enabled: bool) -> Callable[[str], None]:
    import sys

    def say(msg: str) -> None:
        if enabled:
            print(f"  · {msg}", file=sys.stderr, flush=True)
    return say


def read_summary(bundle: str | Path) -> dict[str, Any]:
    """Read ``summary.json`` of a bundle after checking the manifest."""
    bundle = Path(bundle)
    verify(bundle)
    return json.loads((bundle / "summary.json").read_text())


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
        if _sha256(path) != digest:
            raise BundleError(f"{bundle}: {rel} does not match its SHA-256 in {MANIFEST}")


def open_posterior(bundle: str | Path) -> Any:
    """The bundle's DataTree (posterior, sample_stats, …, estimands)."""
    import xarray as xr

    bundle = Path(bundle)
    if (bundle / "posterior.nc").exists():
        return xr.open_datatree(bundle / "posterior.nc", engine="h5netcdf")
    if (bundle / "posterior.zarr").exists():
        return xr.open_datatree(bundle / "posterior.zarr", engine="zarr")
    raise BundleError(f"{bundle} has no posterior.nc or posterior.zarr")
