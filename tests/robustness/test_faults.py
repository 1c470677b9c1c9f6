"""Atomic outputs under faults: a process stopped at any write step (fault-injection hook) or
killed at a random moment leaves nothing that looks complete, and the next write into the same
folder removes the temporaries of the dead process; the ledger stays consistent under
concurrent looks and kills."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bayes_ablation.core.files import (
    FAULT_EXIT,
    MANIFEST,
    atomic_folder,
    atomic_write_text,
    remove_stale_temporaries,
    temporary_sibling,
    verify,
)
from bayes_ablation.errors import BundleError
from tests.conftest import ROOT

STEPS = ["folder-created", "folder-written", "manifest-written", "old-moved", "published"]

# a child process writing a 40-file "bundle" (slowly, when asked, so it can be killed mid-way)
WRITER = """
import sys, time
from pathlib import Path
from bayes_ablation.core.files import atomic_folder
out, tag, pause = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
def write(folder):
    for i in range(40):
        (folder / f"part{i:02d}.txt").write_text(f"{tag} {i}\\n" * 200)
        time.sleep(pause)
atomic_folder(out, write, force=True)
"""


def run_writer(out: Path, tag: str, *, pause: float = 0.0, fault: str | None = None,
               wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.pop("BAYES_ABLATION_FAULT", None)
    if fault:
        env["BAYES_ABLATION_FAULT"] = fault
    argv = [sys.executable, "-c", WRITER, str(out), tag, str(pause)]
    if wait:
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bundle_tag(out: Path) -> str | None:
    """The tag of a complete bundle at ``out`` (None when absent); fails if incomplete."""
    if not out.exists():
        return None
    verify(out)  # a folder at the final name is always complete
    tags = {p.read_text().split()[0] for p in out.glob("part*.txt")}
    assert len(tags) == 1 and len(list(out.glob("part*.txt"))) == 40
    return tags.pop()


def litter(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


@pytest.mark.parametrize("replacing", [False, True], ids=["new", "replace"])
@pytest.mark.parametrize("step", STEPS)
def test_stop_at_each_write_step_leaves_no_complete_looking_output(tmp_path, step, replacing):
    out = tmp_path / "bundle"
    if replacing:
        assert run_writer(out, "old").returncode == 0
    done = run_writer(out, "new", fault=step)
    if step == "old-moved" and not replacing:  # the step exists only when replacing
        assert done.returncode == 0
        assert bundle_tag(out) == "new"
        return
    assert done.returncode == FAULT_EXIT, done.stderr
    tag = bundle_tag(out)
    if step == "published":
        assert tag == "new"
    elif step == "old-moved":
        assert tag is None  # the old one moved aside, the new one not yet in place
    else:
        assert tag == ("old" if replacing else None)
    if step != "published":
        assert litter(tmp_path), "the dead writer's temporary should still be there"
    # the next write into the same folder removes what the dead process left
    atomic_folder(tmp_path / "other", lambda f: (f / "x.txt").write_text("x"))
    assert litter(tmp_path) == []
    assert bundle_tag(out) == tag


def test_killed_at_random_moments(tmp_path):
    rng = np.random.default_rng(20261206)
    out = tmp_path / "bundle"
    assert run_writer(out, "first").returncode == 0
    seen = set()
    for i, delay in enumerate(rng.uniform(0.05, 0.9, size=6)):
        proc = run_writer(out, f"kill{i}", pause=0.01, wait=False)
        time.sleep(float(delay))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        tag = bundle_tag(out)  # complete (the previous or the new one) or absent, never partial
        seen.add(tag)
        remove_stale_temporaries(tmp_path)
        assert litter(tmp_path) == []
        if tag is None:  # killed between the two renames of a replacement
            assert run_writer(out, f"again{i}").returncode == 0
    assert seen & {"first", *(f"kill{i}" for i in range(6))}


def test_live_and_foreign_temporaries_are_left_alone(tmp_path):
    live = temporary_sibling(tmp_path / "b")  # this process: alive
    live.mkdir()
    foreign = tmp_path / ".b.tmp-00000000-1-abcdef12"  # another host
    foreign.mkdir()
    unowned = tmp_path / ".b.tmp-abcdef12"  # older name without an owner
    unowned.write_text("")
    dead = tmp_path / f".c.tmp-{live.name.split('-')[1]}-{_dead_pid()}-abcdef12"
    dead.write_text("")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert live.exists() and foreign.exists() and unowned.exists() and not dead.exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_single_file_write_stopped_before_rename(tmp_path):
    target = tmp_path / "summary.json"
    atomic_write_text(target, "old")
    code = ("import sys; from bayes_ablation.core.files import atomic_write_text; "
            "atomic_write_text(sys.argv[1], 'new')")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), BAYES_ABLATION_FAULT="file-written")
    done = subprocess.run([sys.executable, "-c", code, str(target)], env=env, timeout=60)
    assert done.returncode == FAULT_EXIT
    assert target.read_text() == "old" and litter(tmp_path)
    atomic_write_text(tmp_path / "other.txt", "x")
    assert litter(tmp_path) == [] and target.read_text() == "old"


def test_manifest_is_written_last(tmp_path):
    out = tmp_path / "b"
    with pytest.raises(RuntimeError):
        atomic_folder(out, lambda f: (_ for _ in ()).throw(RuntimeError("boom")))
    assert not out.exists() and litter(tmp_path) == []
    atomic_folder(out, lambda f: (f / "a.txt").write_text("a"))
    assert json.loads((out / MANIFEST).read_text()).keys() == {"a.txt"}
    (out / "a.txt").write_text("changed")
    with pytest.raises(BundleError):
        verify(out)


# ------------------------------------------------------------------------------ ledger

LOOKER = """
import sys
from bayes_ablation.workflows.monitoring.ledger import Ledger, LookEntry
from bayes_ablation.errors import BayesAblationError
path, cuts = sys.argv[1], sys.argv[2:]
out = []
for cut in cuts:
    e = LookEntry(cut_date=cut, data_sha256="d" * 64, design_sha256="a" * 64, p_hr_lt_1=0.9,
                  ppos=0.4, ppos_mcse=0.01, decision="continue", result={"cut": cut},
                  versions={"bayes_ablation": "0.1.0"})
    try:
        with Ledger.open(path) as led:
            out.append(led.record(e).status)
    except BayesAblationError as exc:
        out.append("refused")
        print(f"{cut}: {exc}", file=sys.stderr)
print(",".join(out))
"""


def _lookers(path: Path, cut_lists: list[list[str]]) -> list[subprocess.Popen]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return [subprocess.Popen([sys.executable, "-c", LOOKER, str(path), *cuts], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for cuts in cut_lists]


def test_ledger_under_concurrent_looks(tmp_path):
    from bayes_ablation.workflows.monitoring.ledger import Ledger

    path = tmp_path / "trial.db"
    cuts = [f"2027-{m:02d}-28" for m in range(1, 13)]
    # four processes record the same twelve looks at once, and another the same ones again
    procs = _lookers(path, [cuts] * 4)
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    statuses = [s for out, _ in outputs for s in out.strip().split(",")]
    assert len(statuses) == 48 and "refused" not in statuses, [err for _, err in outputs]
    with Ledger.open(path, create=False) as led:
        records = led.verify()  # the hash chain holds
    assert [r.cut_date for r in records] == cuts  # each look once, in calendar order
    assert [r.look for r in records] == list(range(1, 13))


def test_ledger_survives_a_kill_mid_look(tmp_path):
    from bayes_ablation.workflows.monitoring.ledger import Ledger

    path = tmp_path / "trial.db"
    cuts = [f"2028-01-{d:02d}" for d in range(1, 29)]
    rng = np.random.default_rng(7)
    for delay in rng.uniform(0.3, 1.5, size=3):
        (proc,) = _lookers(path, [cuts])
        time.sleep(float(delay))
        proc.kill()
        proc.communicate()
        if path.exists():
            with Ledger.open(path, create=False) as led:
                records = led.verify()
            assert [r.cut_date for r in records] == cuts[:len(records)]
