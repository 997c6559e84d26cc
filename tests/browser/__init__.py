"""Helpers of the browser test (tests/test_browser.py): a JupyterLab server in a temporary folder and the
notebook it opens."""
