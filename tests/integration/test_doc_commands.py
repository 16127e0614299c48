"""Every shell example in README.md and the docs runs, as written, against a running broker.

The broker is started on free ports; the documented ports (8080, 2575, 11112) and ``localhost``
are rewritten to them, ``fhirmwl`` / ``.venv/bin/fhirmwl`` run this checkout's CLI, and ``curl``
gets ``-f`` so an HTTP error fails the test. Pages with their own runner are listed in
``OWN_TESTS``; ``make run`` / ``make test`` are the README's two entry points (CI runs the
second; the first is ``fhirmwl serve --demo``, started here the same way).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, require_corpus, running_broker

PAGES = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
OWN_TESTS = {
    "docs/auth.md": "tests/integration/security/test_docs_auth.py",
    "docs/security.md": "tests/integration/security/test_docs_security.py",
    "docs/web.md": "tests/integration/web/test_desk_browser.py (screenshot script)",
    "docs/configuration.md": "tests/unit/test_config.py (config show)",
}
ENTRY_POINTS = {"make run", "make test"}
FENCE = re.compile(r"```(?:sh|bash|shell)\n(.*?)```", re.S)


def commands(page: str) -> list[str]:
    text = (REPO / page).read_text(encoding="utf-8")
    out: list[str] = []
    for block in FENCE.findall(text):
        pending = ""
        for raw in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = raw if pending else re.sub(r"\s+#\s.*$", "", raw).strip()
            if not pending and (not line or line.startswith("#")):
                continue
            pending = f"{pending}\n{line}" if pending else line
            try:
                shlex.split(pending)  # a quoted argument may span lines
            except ValueError:
                continue
            out.append(pending)
            pending = ""
    return out


def _documented() -> list[tuple[str, str]]:
    return [
        (page, cmd)
        for page in PAGES
        if page not in OWN_TESTS
        for cmd in commands(page)
        if cmd not in ENTRY_POINTS
    ]


def test_every_page_with_commands_is_covered() -> None:
    runnable = {page for page, _ in _documented()}
    for page in PAGES:
        if commands(page) and page not in OWN_TESTS:
            assert page in runnable or set(commands(page)) <= ENTRY_POINTS, page
    for page, runner in OWN_TESTS.items():
        assert (REPO / runner.split(" ")[0]).exists(), (page, runner)


def _rewrite(cmd: str, ports: dict[int, int]) -> str:
    cli = f"{shlex.quote(sys.executable)} -m fhirmwl.cli"
    cmd = cmd.replace("localhost:", "127.0.0.1:")
    for documented, actual in ports.items():
        cmd = re.sub(rf"(?<=[:\s]){documented}\b", str(actual), cmd)
    cmd = re.sub(r"^(\.venv/bin/)?fhirmwl\b", cli, cmd)
    return re.sub(r"^curl\b", "curl -sSf -o /dev/null", cmd)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where commands that write files run (backups, a restored store), shared in page order."""
    path = tmp_path_factory.mktemp("docs-work")
    (path / "backups").mkdir()
    return path


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> object:
    require_corpus(REPO / ".." / "shared" / "corpus" / "hl7")
    db = f"sqlite:///{tmp_path_factory.mktemp('docs') / 'fhirmwl.db'}"
    with running_broker(db, dicom=True, mllp=True) as rt:
        from fhirmwl.demo import load_demo

        load_demo(rt.services)
        yield rt


@pytest.mark.interop
@pytest.mark.parametrize(("page", "cmd"), _documented(), ids=lambda v: str(v)[:60])
def test_documented_command_runs(broker: object, page: str, cmd: str, workdir: Path) -> None:
    settings = broker.settings  # type: ignore[attr-defined]
    ports = {8080: settings.http_port, 2575: settings.mllp_port, 11112: settings.dicom_port}
    writes = cmd.split()[0:3] in (["fhirmwl", "backup", "--out"],) or " restore " in cmd
    env = dict(os.environ, FHIRMWL_DB=settings.db, PYTHONPATH=str(REPO / "src"))
    cwd = workdir if writes or " purge " in f" {cmd} " else REPO
    done = subprocess.run(
        _rewrite(cmd, ports), shell=True, cwd=cwd, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, (page, cmd, done.stdout[-2000:], done.stderr[-2000:])
