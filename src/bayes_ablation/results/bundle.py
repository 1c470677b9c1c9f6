"""Result bundles: a folder written atomically (temporary folder, then one rename).

Layout::

    <out>/spec.toml          the analysis spec exactly as used
    <out>/posterior.nc       ArviZ DataTree (posterior, sample_stats, observed/constant data,
                             estimands) — or posterior.zarr
    <out>/estimands.csv      one row per scalar estimand
    <out>/<table>.csv        further tables a result adds (e.g. prior_sensitivity.csv)
    <out>/summary.json       estimands, probabilities, diagnostics, provenance
    <out>/report.html        self-contained report
    <out>/figures/*.png      (and *.svg or *.pdf when asked for: vector copies for publication)
    <out>/MANIFEST.json      SHA-256 of every file above, written last

A bundle either appears complete or not at all: a failure while writing removes the temporary
folder and leaves any existing ``<out>`` untouched. An existing ``<out>`` is replaced only with
``force=True``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bayes_ablation.core import forked
from bayes_ablation.core.files import atomic_folder, json_default, verify
from bayes_ablation.errors import BundleError

if TYPE_CHECKING:
    from bayes_ablation.results.contract import AnalysisResult

#: zlib level of the NetCDF posterior's numeric arrays (lossless; values, dtypes unchanged).
#: Level 1: the 400-patient demo's file is 0.5% larger than at level 4 (7.40 vs 7.36 MB) and
#: written ~30% faster; level 0 would be 8.8 MB.
NETCDF_COMPLEVEL = 1


def posterior_tree(result: AnalysisResult) -> Any:
    """The DataTree saved in the bundle: the fit's groups, an ``estimands`` group and the
    result's further groups; the root's attrs describe the file (spec name and SHA-256, data
    SHA-256, provenance as JSON), so the posterior file names what produced it."""
    import xarray as xr

    groups = ({name: result.idata[name].to_dataset() for name in result.idata.children}
              if result.idata is not None else {})
    estimands = result.estimands.copy()
    estimands.attrs = {k: json.dumps(v) if isinstance(v, list | dict) else v
                       for k, v in estimands.attrs.items()}
    groups["estimands"] = estimands
    for name, extra in result.groups.items():   # e.g. exact posterior grids
        groups[name] = extra
    groups = bounded_groups(groups)
    tree = xr.DataTree.from_dict(groups)
    tree.attrs.update(self_description(result))
    return tree


#: above this many rows per patient (or lesion) variable, the bundle keeps the analysis' sufficient
#: statistics (e.g. the aggregated cells) and not the per-row input copy
MAX_STORED_ROWS = 20_000
#: above this many pointwise values (only when all were asked for: the fit's default stores at
#: most 1.5e6), the log-likelihood is stored as float32 (LOO needs ~1e-4)
MAX_FLOAT64_LOGLIK = 1_500_000


def bounded_groups(groups: dict[str, Any]) -> dict[str, Any]:
    """Keep the bundle's size bounded whatever the number of patients (< ~20 MB at 10⁶).

    * ``constant_data`` / ``observed_data``: variables indexed by a ``patient`` or ``lesion``
      dim longer than :data:`MAX_STORED_ROWS` are left out (the input table, whose SHA-256 the
      file records, holds them; aggregated models keep their cells, the likelihood's sufficient
      statistics); the group's ``omitted_per_row_variables`` attribute names them.
    * ``log_likelihood`` with more than :data:`MAX_FLOAT64_LOGLIK` values is stored as float32
      (relative precision 6e-8: PSIS-LOO weights change by < 1e-4), recorded in its attrs.
    """
    out = dict(groups)
    for name in ("constant_data", "observed_data"):
        ds = out.get(name)
        if ds is None:
            continue
        long = [v for v, var in ds.data_vars.items()
                if any(d in ("patient", "lesion") and ds.sizes[d] > MAX_STORED_ROWS
                       for d in var.dims)]
        if long:
            kept = ds.drop_vars(long)
            kept = kept.drop_dims([d for d in ("patient", "lesion") if d in kept.dims
                                   and not any(d in kept[v].dims for v in kept.data_vars)])
            kept.attrs = {**ds.attrs, "omitted_per_row_variables": ", ".join(map(str, long)),
                          "omitted_because": f"more than {MAX_STORED_ROWS} rows: the input "
                                             "table (see data_sha256) holds them"}
            out[name] = kept
    loglik = out.get("log_likelihood")
    if loglik is not None and sum(v.size for v in loglik.data_vars.values()) > MAX_FLOAT64_LOGLIK:
        out["log_likelihood"] = loglik.astype("float32").assign_attrs(
            {**loglik.attrs, "stored_as": f"float32 (more than {MAX_FLOAT64_LOGLIK} values)"})
    return out


def self_description(result: AnalysisResult) -> dict[str, str]:
    """Attributes that make a posterior file describe itself (strings: NetCDF-safe)."""
    prov = result.provenance
    return {"bayes_ablation_analysis": result.spec.name,
            "endpoint": result.spec.endpoint, "model": result.spec.model,
            "spec_sha256": str(prov.get("spec_sha256", result.spec.sha256)),
            "data_sha256": str(prov.get("data_sha256", "")),
            "created_utc": str(prov.get("created_utc", "")),
            "provenance": json.dumps(dict(prov), default=json_default, sort_keys=True)}


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


#: what a report renderer returns: (HTML page, PNG bytes by figure name, further figure files
#: by file name)
Rendered = tuple[str, Mapping[str, bytes], Mapping[str, bytes]]


def write_posterior(tree: Any, folder: Path, posterior_format: str) -> Path:
    """Write the posterior DataTree into ``folder`` (``posterior.nc`` or ``posterior.zarr``),
    through a temporary name renamed when complete."""
    name = "posterior.nc" if posterior_format == "netcdf" else "posterior.zarr"
    part = folder / f".{name}.part"
    if posterior_format == "netcdf":
        tree.to_netcdf(part, engine="h5netcdf", encoding=netcdf_encoding(tree))
    else:
        tree.to_zarr(part)
    os.replace(part, folder / name)
    return folder / name


def write_bundle(result: AnalysisResult, out: str | Path, *, report_html: str | None = None,
                 figures: Mapping[str, bytes] | None = None, force: bool = False,
                 posterior_format: str = "netcdf", spec_text: str | None = None,
                 progress: Callable[[str], None] | None = None,
                 figure_files: Mapping[str, bytes] | None = None,
                 render: Callable[[], Rendered] | None = None) -> Path:
    """Write ``result`` as a bundle at ``out`` (see module docstring), with the report the
    caller rendered (``report_html`` and the figures' PNG bytes by name; ``figure_files``:
    further files for ``figures/`` by file name, e.g. ``km_posterior.svg``) — or, with
    ``render``, the report that function draws while a forked child writes the posterior
    file (what the child did not deliver is written here, so the bundle never depends on
    it)."""
    if posterior_format not in ("netcdf", "zarr"):
        raise BundleError(f"posterior_format must be 'netcdf' or 'zarr', got {posterior_format!r}")
    if (render is None) == (report_html is None):
        raise BundleError("write_bundle needs either report_html (and figures) or render")
    say = progress or (lambda msg: None)

    def write(tmp: Path) -> None:
        text = spec_text if spec_text is not None else spec_file_text(result.spec)
        (tmp / "spec.toml").write_text(text)
        say("writing posterior")
        tree = posterior_tree(result)
        child = forked.start(lambda: write_posterior(tree, tmp, posterior_format))
        try:
            if child is None:
                write_posterior(tree, tmp, posterior_format)
            write_rest(tmp)
            if child is not None and not (child.wait() and _posterior_path(tmp).exists()):
                say("posterior: written here (the parallel writer did not deliver it)")
                for stale in tmp.glob(".posterior.*.part"):
                    shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
                write_posterior(tree, tmp, posterior_format)
        except BaseException:
            if child is not None:
                child.stop()   # before the temporary folder is removed
            raise

    def write_rest(tmp: Path) -> None:
        page, pngs, files = ((report_html, figures or {}, figure_files or {})
                             if render is None else render())
        result.estimand_table.to_csv(tmp / "estimands.csv", index=False)
        for name, frame in result.tables.items():   # e.g. prior sensitivity
            frame.to_csv(tmp / f"{name}.csv", index=False)
        (tmp / "summary.json").write_text(json.dumps(result.to_dict(), indent=2,
                                                     default=json_default))
        folder = tmp / "figures"
        folder.mkdir()
        for name, png in pngs.items():
            (folder / f"{name}.png").write_bytes(png)
        for file_name, data in files.items():
            if Path(file_name).name != file_name:
                raise BundleError(f"figure file name {file_name!r} is not a plain file name")
            if not (folder / file_name).exists():
                (folder / file_name).write_bytes(data)
        (tmp / "report.html").write_text(page, encoding="utf-8")

    return atomic_folder(out, write, force=force)


def _posterior_path(folder: Path) -> Path:
    nc = folder / "posterior.nc"
    return nc if nc.exists() else folder / "posterior.zarr"


def spec_file_text(spec: Any) -> str:
    """The spec as used: its original file (comments kept) when the content still matches the
    spec's hash, otherwise the spec regenerated from its (e.g. overridden) content."""
    import tomllib

    from bayes_ablation.spec.plan import canonical_sha256

    src = Path(spec.source_path)
    if src.is_file():
        text = src.read_text()
        try:
            if canonical_sha256(tomllib.loads(text)) == spec.sha256:
                return text
        except tomllib.TOMLDecodeError:
            pass
    return f"# regenerated from the analysis as run (differs from {src})\n" + spec.to_toml_text()


def read_summary(bundle: str | Path) -> dict[str, Any]:
    """Read ``summary.json`` of a bundle after checking the manifest."""
    bundle = Path(bundle)
    verify(bundle)
    return json.loads((bundle / "summary.json").read_text())


def open_posterior(bundle: str | Path) -> Any:
    """The bundle's DataTree (posterior, sample_stats, …, estimands)."""
    import xarray as xr

    bundle = Path(bundle)
    if (bundle / "posterior.nc").exists():
        return xr.open_datatree(bundle / "posterior.nc", engine="h5netcdf")
    if (bundle / "posterior.zarr").exists():
        return xr.open_datatree(bundle / "posterior.zarr", engine="zarr")
    raise BundleError(f"{bundle} has no posterior.nc or posterior.zarr")
