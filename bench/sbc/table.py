"""The SBC results table of the README and bench/sbc/README.md, from the committed bundles.

    python bench/sbc/table.py            # print the table
    python bench/sbc/table.py --write    # replace the table in README.md and bench/sbc/README.md

Every number comes from ``bench/sbc/<spec>/summary.json`` (verdict, flagged fits, uniformity
p-values, draws, wall time of the run that wrote it); ``tests/workflows/validation/
test_validation.py`` checks that both READMEs hold exactly this table.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BEGIN, END = "<!-- sbc-table:begin -->", "<!-- sbc-table:end -->"


def rows(link_prefix: str) -> list[str]:
    out = ["| spec | model | simulations | fits flagged (divergences / R-hat / ESS) | parameters "
           "tested | smallest p (χ² / ECDF) | verdict | draws | wall time (2 workers) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for summary_path in sorted(HERE.glob("*/summary.json")):
        s = json.loads(summary_path.read_text())
        prov, problems, uni = s["provenance"], s["fit_problems"], s["uniformity"]
        flags = problems["by_flag"]
        name = summary_path.parent.name
        sampler = prov["sampler_settings"]
        model = prov["model"]
        borrowing = tomllib.loads((summary_path.parent / "spec.toml").read_text()).get(
            "borrowing", {}).get("method", "none")
        if borrowing != "none":
            model += f" + {borrowing} borrowing"
        out.append(
            f"| [`{name}`]({link_prefix}{name}/report.html) | {model} | "
            f"{problems['simulations']} ({problems['errors']} errors) | {problems['flagged']} "
            f"({flags.get('divergences', 0)} / {flags.get('rhat', 0)} / "
            f"{flags.get('low_ess', 0)}) | {len(uni)} | "
            f"{min(u['chi2_p'] for u in uni):.3f} / {min(u['ecdf_p'] for u in uni):.3f} | "
            f"{'calibrated' if s['passed'] else '**not calibrated**'} | "
            f"{sampler['chains']} × {sampler['draws']} | "
            f"{prov['wall_seconds_this_run'] / 60:.0f} min |")
    return out


def table(link_prefix: str) -> str:
    return "\n".join([BEGIN, *rows(link_prefix), END])


TARGETS = {ROOT / "README.md": "bench/sbc/", HERE / "README.md": ""}


def replaced(text: str, new: str) -> str:
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + new + text[stop:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    for path, prefix in TARGETS.items():
        if args.write:
            path.write_text(replaced(path.read_text(), table(prefix)))
        else:
            print(table(prefix))
            break


if __name__ == "__main__":
    main()
