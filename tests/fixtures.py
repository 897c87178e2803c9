"""Shared test material: a tiny corpus (identifiers, camelCase, dotted names) and a read-only folder."""

import os
import subprocess

import pytest

CORPUS = {
    "hr": {"title": "HR case", "text": "An employee asks the people team about parental leave"},
    "inc": {"title": "Incident", "text": "The email server is down and nobody can send mail"},
    "cost": {"title": "", "text": "Set u_cost_center on the sys_user record from the department"},
    "mgr": {"title": "Manager lookup", "text": "Read sys_user.manager to find who approves the request"},
    "asg": {"title": "Assignment", "text": "Set assignedTo when the ticket is routed to a group"},
}


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder nobody can write into, root included: permission bits for a normal user, a read-only
    tmpfs mount for root (who ignores permission bits). Skipped where neither is possible."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a read-only folder as root: {r.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


# ---------------------------------------------------------------------------------------------- the README's commands

def readme_commands(readme=None) -> list[str]:
    """Every command of the README's ```bash blocks, continuation lines joined, comments dropped."""
    import re
    from pathlib import Path

    text = Path(readme or Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line:
                commands.append(re.sub(r"\s+", " ", line))
    return commands


def readme_python_blocks(readme=None) -> list[str]:
    import re
    from pathlib import Path

    text = Path(readme or Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def readme_command(prefix: str) -> str:
    """The one README command that starts with ``prefix``."""
    found = [c for c in readme_commands() if c.startswith(prefix)]
    assert len(found) == 1, f"expected one README command starting with {prefix!r}, found {found}"
    return found[0]


def make_clone(dst):
    """A copy of the repository's sources (what a fresh clone holds, minus notebooks and git), so README
    commands run as written without writing into this working tree."""
    import shutil
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    dst = Path(dst)
    skip = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "generated", "*.pyc")
    for name in ("helpers", "configs", "data", "results"):
        shutil.copytree(repo / name, dst / name, ignore=skip)
    for name in ("README.md", "Makefile", "pyproject.toml", "requirements.txt"):
        shutil.copy2(repo / name, dst / name)
    return dst


def clone_env(clone) -> dict:
    """The environment of an activated .venv, with ``helpers`` imported from ``clone``."""
    import sys
    from pathlib import Path

    venv_bin = str(Path(sys.executable).parent)
    return {**os.environ, "PYTHONPATH": str(clone), "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
            "VIRTUAL_ENV": str(Path(venv_bin).parent), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false"}


def run_readme_command(command: str, clone, timeout: int = 900, **env):
    """Run one README command with bash in ``clone``, as a user with the venv activated would."""
    return subprocess.run(["bash", "-c", f"set -euo pipefail\n{command}"], cwd=clone, capture_output=True,
                          text=True, env={**clone_env(clone), **env}, timeout=timeout)
