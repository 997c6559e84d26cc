"""Start and stop a JupyterLab or Jupyter Notebook 7 server for the browser tests, and install what they need where
that is missing."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Chromium flags for a headless run in a sandbox-less container that must not reach the network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def missing() -> list[str]:
    """What the browser test lacks: chromium, jupyterlab, notebook, voila, playwright."""
    out = [] if os.access(CHROMIUM, os.X_OK) else ["chromium"]
    for module in ("jupyterlab", "notebook", "voila", "playwright"):
        try:
            __import__(module)
        except ImportError:
            out.append(module)
    return out


def install_deps() -> str:
    """Run scripts/browser_test_deps.sh with this Python; returns its output (raises CalledProcessError)."""
    result = subprocess.run(["bash", str(REPO / "scripts" / "browser_test_deps.sh")], capture_output=True,
                            text=True, env=dict(os.environ, PYTHON=sys.executable), timeout=900)
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, result.args, result.stdout, result.stderr)
    return result.stdout + result.stderr


def write_notebook(path: Path, cells: list[str]) -> Path:
    """An .ipynb of code cells, for the venv's python3 kernel."""
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                     "source": source} for source in cells],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                       "language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    """A running JupyterLab or Notebook 7: its address, token and process (the server started by `start`)."""

    url: str
    token: str
    process: subprocess.Popen
    log: Path
    app: str = "lab"

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def page(self, notebook: str) -> str:
        if self.app == "notebook":
            return f"{self.url}/notebooks/{notebook}?token={self.token}"
        return f"{self.url}/lab/tree/{notebook}?token={self.token}&reset"

    def wait_for_idle_kernel(self, timeout: float = 60) -> None:
        """Until the notebook's kernel has started and is idle (cells run before that are dropped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            kernels = self.api("/api/kernels")
            if kernels and all(k.get("execution_state") == "idle" for k in kernels):
                return
            time.sleep(0.5)
        raise TimeoutError(f"no idle kernel after {timeout} s: {self.api('/api/kernels')}")

    def stop(self) -> None:
        """Shut down the kernels this server started, then the server (its own process group only)."""
        try:
            for kernel in self.api("/api/kernels"):
                self.api(f"/api/kernels/{kernel['id']}", method="DELETE")
        except Exception:
            pass  # the server may already be gone; the process group kill below still ends everything
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def start(root: Path, home: Path, timeout: float = 60, app: str = "lab") -> Lab:
    """JupyterLab (`app="lab"`) or Jupyter Notebook 7 (`app="notebook"`) on 127.0.0.1 with a token, serving
    `root`, with its config and runtime files under `home`."""
    token = secrets.token_hex(16)
    # no "get Jupyter news?" question over the screenshots
    notification = home / "lab-settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false"}))
    port = _free_port()
    log = home / "jupyterlab.log"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"), IPYTHONDIR=str(home / "ipython"),
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    command = [sys.executable, "-m", "jupyterlab" if app == "lab" else "notebook", "--no-browser", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"]
    if app == "lab":
        command += ["--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
                    "--LabApp.extension_manager=readonly"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI machines often run as root
        command.append("--allow-root")
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root,
                                   start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, process, log, app)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Jupyter {app} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            lab.api("/api/status")
            return lab
        except Exception:
            time.sleep(0.5)
    lab.stop()
    raise RuntimeError(f"Jupyter {app} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")
