"""The README works when copied: its commands, ini files and Python, run as a newcomer would.

The blocks are read from README.md itself, so editing the README changes what is tested.
Only the ports change (6543 and 9000 become free ports, as tests/test_examples.py does), and
the walkthrough runs the real `fcplus-wsgi` commands and `pserve` in their own processes.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from paste.deploy import loadapp, loadfilter

from fcplus_wsgi import FCPlusMiddleware
from tests.support.pyramid_stack import HttpBrowser
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(kind: str) -> list[str]:
    return re.findall(rf"^```{kind}\n(.*?)^```", README, re.S | re.M)


def commands(block: str) -> list[str]:
    """The shell commands of a block, continuation lines joined."""
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else None]


def env_with_scripts() -> dict[str, str]:
    """The environment of a shell where the package is installed: its console scripts on PATH."""
    bindir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listened on {port} within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


@contextmanager
def background(command: str, cwd: Path, port: int, env: dict[str, str], name: str) -> Iterator[Path]:
    """Run one README command as a shell would, until the test is done; yields its log."""
    log = cwd / f"{name}.log"
    with log.open("wb") as out:
        # A session of its own, so the shell and what it started stop together.
        proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(proc, port, log)
        yield log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def test_the_two_commands_are_two_and_name_what_exists() -> None:
    lines = [line.strip() for line in section("The two commands").splitlines() if line.startswith("    ")]
    assert lines == ["pip install . && fcplus-wsgi demo", "bash scripts/test"]
    assert (ROOT / "scripts" / "test").is_file()


def test_ini_comments_are_on_their_own_lines() -> None:
    inis = blocks("ini")
    assert len(inis) >= 2
    for ini in inis:
        for line in ini.splitlines():
            if "=" in line and not line.lstrip().startswith(("#", ";")):
                assert not re.search(r"\s[;#]", line), f"inline comment in the README's ini: {line!r}"


def test_your_app_against_the_development_provider_as_written(tmp_path: Path) -> None:
    """Every command of the section, in order, in an empty folder; then a sign-in over HTTP."""
    app_port, provider_port = free_port(), free_port()

    def localise(text: str) -> str:
        return text.replace(":6543", f":{app_port}").replace(":9000", f":{provider_port}").replace(
            "--port 9000", f"--port {provider_port}")

    text = section("Your app against the development provider")
    shell = [localise(c) for c in commands(re.findall(r"```sh\n(.*?)```", text, re.S)[0])]
    run_it = [localise(c) for c in commands(re.findall(r"```sh\n(.*?)```", text, re.S)[1])]
    (tmp_path / "myapp.py").write_text(re.findall(r"```python\n(.*?)```", text, re.S)[0])
    (tmp_path / "development.ini").write_text(localise(re.findall(r"```ini\n(.*?)```", text, re.S)[0]))
    env = env_with_scripts()
    assert shell[0].startswith("fcplus-wsgi keys generate --out ")
    made = subprocess.run(["bash", "-c", shell[0]], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "fcplus-keys.json").stat().st_mode & 0o777 == 0o600
    assert shell[1].startswith("fcplus-wsgi mock-provider ")
    with background(shell[1], tmp_path, provider_port, env, "provider"):
        assert run_it[0] == "fcplus-wsgi check development.ini"
        checked = subprocess.run(["bash", "-c", run_it[0]], cwd=tmp_path, env=env, capture_output=True, text=True,
                                 timeout=60, check=False)
        assert checked.returncode == 0 and checked.stdout.startswith("OK"), checked.stdout + checked.stderr
        assert run_it[1] == "PYTHONPATH=. pserve development.ini"
        with background(run_it[1], tmp_path, app_port, env, "pserve") as log:
            browser = HttpBrowser(f"http://127.0.0.1:{app_port}")
            assert "Public page" in browser.get("/").text
            page = browser.sign_in("/compte", identity="marie-martin", acr="eidas3")
            assert page.status_code == 200 and page.text.startswith("Bonjour Marie Élise (eidas3), sub "), page.text
            assert "Traceback" not in log.read_text(errors="replace")


def _production(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    text = section("Against the platform's integration, then production")
    (tmp_path / "myapp.py").write_text(
        re.findall(r"```python\n(.*?)```", section("Your app against the development provider"), re.S)[0])
    ini = tmp_path / "production.ini"
    ini.write_text(re.findall(r"```ini\n(.*?)```", text, re.S)[0])
    made = subprocess.run([sys.executable, "-m", "fcplus_wsgi.cli", "keys", "generate", "--out",
                           str(tmp_path / "fcplus-keys.json")], capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    monkeypatch.setenv("FCPLUS_CLIENT_ID", "client-from-datapass")
    monkeypatch.setenv("FCPLUS_CLIENT_SECRET", "secret-from-the-platform-" + "x" * 32)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("myapp", None)
    return ini


def test_production_ini_loads_with_pastedeploy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ini = _production(tmp_path, monkeypatch)
    wrap = loadfilter(f"config:{ini}", name="fcplus")
    wrapped = wrap(lambda environ, start_response: [])
    assert isinstance(wrapped, FCPlusMiddleware)
    settings = wrapped.settings
    assert settings.provider_name == "fcplus-integration" and settings.client_id == "client-from-datapass"
    assert settings.keys_file == str(tmp_path / "fcplus-keys.json") and settings.cookie_secure
    assert settings.session_store == f"sqlite:///{tmp_path}/sessions.sqlite3"
    pipeline = loadapp(f"config:{ini}", name="main")
    assert isinstance(pipeline, FCPlusMiddleware)


def test_an_inline_comment_in_the_ini_stops_the_start_with_its_fix(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """What the README used to show: the comment would have become part of the value."""
    ini = _production(tmp_path, monkeypatch)
    ini.write_text(ini.read_text().replace("provider = fcplus-integration\n",
                                           "provider = fcplus-integration            ; or fcplus-production\n"))
    with pytest.raises(SystemExit) as stop:
        loadapp(f"config:{ini}", name="main")
    message = str(stop.value.code)
    assert message.startswith("fcplus-wsgi: configuration error: provider holds an inline comment")
    assert "line of its own" in message and "\n" not in message


def test_python_snippet_builds_the_middleware(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _production(tmp_path, monkeypatch)
    snippet = re.findall(r"```python\n(.*?)```", section("Against the platform's integration, then production"),
                         re.S)[0]
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)  # the README's own code
    application = namespace["application"]
    assert isinstance(application, FCPlusMiddleware)
    assert application.settings.client_secret.startswith("secret-from-the-platform-")
