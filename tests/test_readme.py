"""The README's commands run as written.

Every fenced ``bash`` block of README.md is extracted. A block preceded by
``<!-- readme-test: skip ... -->`` is not run (the set-up commands themselves); one preceded by
``<!-- readme-test: slow-only ... -->`` runs only in the slow test. The default suite checks that
every ``bayes-ablation`` command line in the README (blocks and the command table) parses and
names files that exist in the repository or that an earlier block writes; the ``slow`` test
(``bash scripts/test.sh -m slow -k readme``) copies the repository to a temporary folder, as a
fresh clone would be, and runs the blocks in order with bash ``-euo pipefail``, with fewer draws
and simulations (the only change made to a command).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import ROOT

README = ROOT / "README.md"
_FENCE = re.compile(r"(?:<!-- readme-test: (?P<tag>[a-z-]+)[^>]*-->\n)?```bash\n(?P<body>.*?)```",
                    re.DOTALL)


@dataclass(frozen=True)
class Block:
    line: int          # README line of the opening fence
    tag: str | None    # None, "skip" or "slow-only"
    body: str


def readme_blocks() -> list[Block]:
    text = README.read_text()
    return [Block(text[:m.start("body")].count("\n"), m.group("tag"), m.group("body"))
            for m in _FENCE.finditer(text)]


def command_lines(body: str) -> list[str]:
    """Shell lines of a block with continuations joined and comments removed."""
    joined = re.sub(r"\\\n\s*", " ", body)
    return [raw.strip() for raw in joined.splitlines() if shlex.split(raw, comments=True)]


def commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line (split at ``&&``), as words."""
    out: list[list[str]] = [[]]
    for word in shlex.split(line, comments=True):
        if word == "&&":
            out.append([])
        else:
            out[-1].append(word)
    return [c for c in out if c]


def shrink(line: str) -> str:
    """Fewer draws and simulations; nothing else about a command changes."""
    if re.match(r"bayes-ablation (fit|meta) ", line):
        line = re.sub(r"\s+#.*$", "", line) + " --draws 150 --tune 150 --chains 2"
    line = re.sub(r"--n-trials \d+", "--n-trials 200", line)
    return re.sub(r"--n-sims \d+", "--n-sims 4", line)


def _cli_invocations() -> list[tuple[str, list[str]]]:
    """(where, argv) of every bayes-ablation command in the README: blocks and inline code."""
    out: list[tuple[str, list[str]]] = []
    for block in readme_blocks():
        for line in command_lines(block.body):
            for words in commands(line):
                if words[0] == "bayes-ablation":
                    out.append((f"README.md block at line {block.line}", words[1:]))
    for number, text in enumerate(README.read_text().splitlines(), start=1):
        for code in re.findall(r"`(bayes-ablation [^`]+)`", text):
            words = shlex.split(re.sub(r"\[[^\]]*\]", "", code))
            out.append((f"README.md line {number}", words[1:]))
    return out


def test_readme_has_runnable_blocks_for_every_documented_command() -> None:
    blocks = readme_blocks()
    run = [b for b in blocks if b.tag is None]
    assert len(run) >= 5, "the walkthrough blocks are missing"
    shown = {words[1] for b in run for line in command_lines(b.body) for words in commands(line)
             if words[0] == "bayes-ablation"}
    documented = {argv[0] for _, argv in _cli_invocations() if argv}
    missing = documented - shown - {"validate"}  # validate: slow-only block
    assert not missing, f"README commands without a runnable example: {sorted(missing)}"


def test_every_readme_command_parses_and_names_existing_inputs() -> None:
    from bayes_ablation.cli.main import build_parser

    parser = build_parser()
    written: set[str] = set()
    for block in readme_blocks():  # outputs of earlier blocks count as existing
        for line in command_lines(block.body):
            words = [w for c in commands(line) for w in c]
            for flag in ("--out", "--out-patients", "--out-lesions", "--csv", "--ledger"):
                if flag in words:
                    written.add(words[words.index(flag) + 1].rstrip("/"))
    problems = []
    for where, argv in _cli_invocations():
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            problems.append(f"{where}: does not parse: bayes-ablation {' '.join(argv)}")
            continue
        for name in ("spec", "design", "data", "lesions"):
            value = getattr(args, name, None)
            if value and "/" in value and value.split("/")[0] in ("models", "examples"):
                if not (ROOT / value).exists():
                    problems.append(f"{where}: --{name} {value} does not exist")
            elif value and value.startswith("results/") and value not in written:
                problems.append(f"{where}: --{name} {value} is written by no README block")
    assert not problems, "\n".join(problems)


def _fresh_copy(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    (dest / ".venv").symlink_to(ROOT / ".venv")  # the environment scripts/setup.sh made


@pytest.mark.slow
def test_readme_blocks_run_as_pasted_on_a_fresh_copy(tmp_path: Path) -> None:
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("needs the project environment (bash scripts/setup.sh)")
    repo = tmp_path / "clone"
    repo.mkdir()
    _fresh_copy(repo)
    env = dict(os.environ, PYTHONPATH=str(repo / "src"), PYTHONHASHSEED="0",
               PYTENSOR_FLAGS=f"base_compiledir={ROOT / '.cache' / 'pytensor'}")
    script = ["set -euo pipefail"]
    for block in readme_blocks():
        if block.tag == "skip":
            continue
        script.append(f"echo '--- README block at line {block.line}'")
        script += [shrink(line) for line in command_lines(block.body)]
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:])
    for bundle in ("pfs", "pwe", "lr", "meta", "meta_ipd"):
        assert (repo / "results" / bundle / "report.html").exists(), bundle
    assert (repo / "results" / "monitoring" / "report.html").exists()
