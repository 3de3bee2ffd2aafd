"""A pytest plugin (loaded by conftest.py): the test session writes nothing into the checkout. Every file a test
writes belongs in its temporary folder; a test that wrote into tables/, figures/, runs/ or .cache/ would leave a
developer's checkout dirty and, worse, let a second local run reuse what the first one left (e.g. a trained
tokenizer), so that the code path stops being tested. The session fails, naming each path, when `git status`
(untracked and ignored files included) shows an entry that was not there when the session started."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from replicate.results import ROOT

# what running the tests may legitimately create: the environment and the tools' caches
ALLOWED = (".venv/", ".pytest_cache/", ".ruff_cache/", "__pycache__/", ".egg-info/")
_BEFORE = pytest.StashKey[set[str] | None]()


def checkout_entries(root: Path = ROOT) -> set[str] | None:
    """`git status` lines (status and path) of the checkout; None outside a git checkout."""
    try:
        found = subprocess.run(
            ["git", "status", "--porcelain", "--ignored=matching", "--untracked-files=all"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return {line for line in found.stdout.splitlines() if not any(part in line for part in ALLOWED)}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_BEFORE] = checkout_entries()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.config.stash.get(_BEFORE, None)
    after = checkout_entries()
    if before is None or after is None:
        return
    written = sorted(after - before)
    if written:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = "\n".join(f"  {entry}" for entry in written)
        message = f"the tests wrote into the checkout (each belongs in a temporary folder):\n{lines}"
        if reporter is not None:
            reporter.write_line(message, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
