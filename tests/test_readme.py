"""Every command the README shows is run, as written, by a test here or named here, or by CI (issue 12).

The toolkit block runs in the smoke profile inside a copy of the sources (:func:`tests.fixtures.make_clone`),
with the venv activated as the README says, so nothing is written into this working tree.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.fixtures import make_clone, readme_commands, readme_python_blocks, run_readme_command

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent

# Commands run somewhere else than test_toolkit_commands, which runs every other one.
ELSEWHERE = {
    "make setup": "ci",                 # .ci/run -> make test, which depends on setup
    "make test": "ci",
    "source .venv/bin/activate": "tests/test_readme.py::test_activated_venv_has_the_toolkit",
    "jupyter lab": "tests/test_readme.py::test_jupyter_lab_starts",
    "jupyter lab --allow-root": "tests/test_readme.py::test_jupyter_lab_starts",
    "make reproduce": "tests/test_readme.py::test_make_reproduce",
    "python -m helpers.train --config configs/example.yaml --profile smoke --train-jsonl data/examples/train.jsonl "
    "--corpora data/examples/beir --out runs/example": "tests/test_trainer.py::test_readme_example_shows_fine_tuning_helps",
    "torchrun --standalone --nproc_per_node=2 -m helpers.train --config configs/example.yaml --profile smoke "
    "--max-steps 3 --no-eval --out runs/example-ddp": "tests/test_trainer.py::test_ddp_two_processes_on_cpu",
}


def test_every_readme_command_is_run_by_a_test_or_ci():
    commands = readme_commands()
    assert len(commands) == len(set(commands)), "a README command appears twice"
    assert not set(ELSEWHERE) - set(commands), f"no longer in the README: {set(ELSEWHERE) - set(commands)}"
    for command in commands:
        if command not in ELSEWHERE:
            assert command.startswith("python -m helpers."), \
                f"README command {command!r} is run by no test: add it to ELSEWHERE with the test that runs it"
    for where in set(ELSEWHERE.values()):
        if where == "ci":
            assert "make test" in (REPO / ".ci" / "run").read_text()
            assert re.search(r"^test: setup", (REPO / "Makefile").read_text(), flags=re.M)
            continue
        path, name = where.split("::")
        assert re.search(rf"^def {name}\(", (REPO / path).read_text(), flags=re.M), where


@pytest.mark.slow
def test_toolkit_commands(tmp_path):
    """The toolkit block in order (build, validate, evaluate, train, models, bench, checks), then the
    README's Python snippet, in a fresh copy of the sources."""
    clone = make_clone(tmp_path / "clone")
    timings = {}
    for command in readme_commands():
        if command in ELSEWHERE:
            continue
        t0 = time.perf_counter()
        r = run_readme_command(command, clone)
        timings[command] = round(time.perf_counter() - t0, 1)
        assert r.returncode == 0, f"{command}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        if command.startswith("python -m helpers.data validate"):
            assert r.stdout.strip().endswith("OK")
        if "--splits dev 'ood*'" in command:
            res = json.loads((clone / "runs" / "table.json").read_text())
            assert set(res["groups"]) == {"dev", "ood"} and len(res["groups"]["ood"]["folders"]) == 10
        if "--config configs/multitask_catalog.yaml" in command:   # --max-steps wins over the profile's cap
            log = json.loads((clone / "runs" / "multitask_catalog-smoke" / "train_log.json").read_text())
            steps = int(re.search(r"--max-steps (\d+)", command).group(1))
            assert log["resolved"]["recipe"] == "catalog" and log["training"]["global_step"] == steps
    for block in readme_python_blocks():
        r = subprocess.run([sys.executable, "-c", block], cwd=clone, capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(clone), "HF_HUB_OFFLINE": "1"}, timeout=600)
        assert r.returncode == 0, f"{block}\n{r.stderr[-3000:]}"
    print(json.dumps(timings, indent=1))


def test_activated_venv_has_the_toolkit():
    command = "source .venv/bin/activate"
    assert command in readme_commands()
    if not (REPO / ".venv" / "bin" / "activate").is_file():
        pytest.skip("no .venv in this checkout (make setup creates it)")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if not p.startswith(str(VENV)))
    r = subprocess.run(["bash", "-c", f"{command} && python -c 'import bm25s, helpers; print(helpers.__file__)'"],
                       cwd=REPO, capture_output=True, text=True, env={**os.environ, "PATH": path}, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(REPO / "helpers" / "__init__.py")


def _start_jupyter(command: str, tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "PATH": str(VENV / "bin") + os.pathsep + os.environ.get("PATH", ""),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws")}
    # on a free port, without a browser: the README's command otherwise
    return subprocess.Popen(["bash", "-c", f"exec {command} --no-browser --ServerApp.port=0 "
                             f"--IdentityProvider.token=readme-test --ServerApp.root_dir={REPO}"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_jupyter_lab_starts(tmp_path):
    """``jupyter lab`` (``--allow-root`` as root) serves JupyterLab with the notebooks; as root the plain
    command is refused, which is why the README shows the flag."""
    is_root = os.geteuid() == 0
    command = "jupyter lab --allow-root" if is_root else "jupyter lab"
    assert {"jupyter lab", "jupyter lab --allow-root"} <= set(readme_commands())
    if is_root:
        p = _start_jupyter("jupyter lab", tmp_path)
        out, _ = p.communicate(timeout=120)
        assert p.returncode != 0 and "--allow-root" in out, out[-2000:]
    p = _start_jupyter(command, tmp_path)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        url, deadline = None, time.time() + 120
        while url is None and time.time() < deadline and p.poll() is None:
            time.sleep(0.5)
            m = re.search(r"(http://127\.0\.0\.1:\d+)/lab", "".join(lines))
            url = m.group(1) if m else None
        assert url, "".join(lines)[-3000:]
        with urllib.request.urlopen(f"{url}/api/contents/notebooks?token=readme-test", timeout=30) as resp:
            names = {c["name"] for c in json.load(resp)["content"]}
        assert "00_environment.ipynb" in names
        with urllib.request.urlopen(f"{url}/lab?token=readme-test", timeout=30) as resp:
            assert resp.status == 200 and "JupyterLab" in resp.read().decode()
    finally:
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.mark.notebooks
def test_make_reproduce(tmp_path):
    """``make reproduce`` is the cpu run of every notebook (hours); here the same target runs one notebook in
    the smoke profile into a temporary folder."""
    assert "make reproduce" in readme_commands()
    if not (VENV / ".installed").is_file():
        pytest.skip("the test does not run from a venv made by `make setup`")
    r = subprocess.run(["make", "-o", f"{VENV}/.installed", "reproduce", f"VENV={VENV}", "PROFILE=smoke",
                        f"ARGS=--only 00_environment --out {tmp_path}"], cwd=REPO, capture_output=True, text=True,
                       timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert (tmp_path / "00_environment.ipynb").is_file()
    assert json.loads((tmp_path / "results" / "00_environment.json").read_text())["profile"] == "smoke"
