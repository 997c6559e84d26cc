#!/usr/bin/env bash
# Install what tests/test_browser.py needs, where it is missing: Debian's chromium (Playwright cannot download its
# own browser builds here) and, into the current Python environment, JupyterLab, Jupyter Notebook 7,
# Voila and Playwright's Python package.
# Safe to run again: each step is skipped when its tool is already there. Exit status 0 only if all are there.
set -euo pipefail

PYTHON="${PYTHON:-python}"

if [ ! -x /usr/bin/chromium ]; then
    if command -v apt-get >/dev/null 2>&1; then
        SUDO=""
        if [ "$(id -u)" != "0" ]; then SUDO="sudo -n"; fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
    else
        echo "browser_test_deps: /usr/bin/chromium is missing and there is no apt-get to install it" >&2
        exit 1
    fi
fi

if ! "$PYTHON" -c "import jupyterlab, notebook, voila, playwright" >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q jupyterlab "notebook>=7" voila playwright
fi

/usr/bin/chromium --version >/dev/null 2>&1
"$PYTHON" -c "import jupyterlab, notebook, voila, playwright, ipykernel"
