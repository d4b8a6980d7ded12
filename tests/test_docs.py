"""The documentation: the site under docs/ builds with ``mkdocs build --strict`` (no broken link,
anchor or API reference), every page is in the nav and linked from the README, the README stays
short and keeps its two set-up commands on top, in step with CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml  # PyYAML comes with mkdocs (the dev extra)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

MAIN_JOB = "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && python -m bench run --all"
TEST_COMMAND = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[dev]' && python -m pytest -q"
)
# What `.ci/run` runs after making and activating its venv: the tail of the test command.
CI_COMMAND = "pip install -q -e '.[dev]' && python -m pytest -q"


def nav_pages() -> list[str]:
    """The markdown files of mkdocs.yml's nav, in order (nested sections flattened)."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def walk(entries) -> list[str]:
        pages = []
        for entry in entries:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            pages += walk(value) if isinstance(value, list) else [value]
        return pages

    return walk(config["nav"])


def readme_links() -> list[str]:
    """The targets of the README's markdown links, without anchors."""
    return [m.split("#", 1)[0] for m in re.findall(r"\]\(([^)\s]+)\)", README.read_text())]


def test_the_site_builds_strict(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner, not a warning of ours
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "api" / "index.html").is_file()
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("register_method", "create_method", "StepLoss", "load_dataset", "BalancePlan", "Registry"):
        assert re.search(rf'id="[\w.]*\.{name}"', api), f"the API reference lacks {name}"


def test_every_docs_page_is_in_the_nav():
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    nav = nav_pages()
    assert len(nav) == len(set(nav)), "a page is in the nav twice"
    assert pages == set(nav), (
        f"not in the nav: {sorted(pages - set(nav))}; missing: {sorted(set(nav) - pages)}"
    )


def test_the_readme_links_every_page_of_the_nav():
    linked = set(readme_links())
    missing = [page for page in nav_pages() if f"docs/{page}" not in linked]
    assert not missing, f"README.md does not link {missing}"


def test_the_readme_links_resolve():
    for target in readme_links():
        if target and not re.match(r"[a-z]+:", target):
            assert (ROOT / target).exists(), f"README.md links {target}, which does not exist"


def test_the_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail into docs/"


def test_the_readme_opens_with_the_main_job_and_the_test_command_ci_runs():
    blocks = re.findall(r"```bash\n(.*?)\n```", README.read_text(), re.S)
    assert blocks[:2] == [MAIN_JOB, TEST_COMMAND]
    assert CI_COMMAND in (ROOT / ".ci" / "run").read_text()
