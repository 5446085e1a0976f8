"""The documentation site builds strictly, holds the pages a newcomer needs, and repeats the
README's walkthrough word for word (so the two cannot drift apart).

scripts/test builds the site once and exports FCPLUS_DOCS_SITE; run alone, this file builds
it itself (the `docs` extra: pip install -e .[docs]).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install -e .[docs])")


def build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=project, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = os.environ.get("FCPLUS_DOCS_SITE")
    if built and (Path(built) / "index.html").is_file():
        return Path(built)
    out = tmp_path_factory.mktemp("site")
    result = build(ROOT, out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def text_of(html: str) -> str:
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)))


@pytest.mark.parametrize("page", [
    "index", "quickstart", "guide-integration", "faq", "configuration", "reference/settings", "reference/api",
    "deployment", "security", "errors", "observability", "pyramid", "providers", "development-provider", "buttons",
])
def test_every_page_is_built(site: Path, page: str) -> None:
    html = (site / f"{page}.html").read_text(encoding="utf-8")
    assert "<h1" in html and len(text_of(html)) > 500


def test_a_warning_fails_the_build(tmp_path: Path) -> None:
    """Strict is real: a broken link in any page stops the build (as it stops scripts/test)."""
    project = tmp_path / "project"
    shutil.copytree(ROOT / "docs", project / "docs")
    shutil.copy(ROOT / "mkdocs.yml", project / "mkdocs.yml")
    shutil.copytree(ROOT / "fcplus_wsgi", project / "fcplus_wsgi")
    shutil.copytree(ROOT / "examples", project / "examples")
    faq = project / "docs" / "faq.md"
    faq.write_text(faq.read_text(encoding="utf-8") + "\nSee [the missing page](no-such-page.md).\n", encoding="utf-8")
    broken = build(project, tmp_path / "site")
    assert broken.returncode != 0
    assert "no-such-page.md" in broken.stdout + broken.stderr


def test_api_reference_is_made_from_the_docstrings(site: Path) -> None:
    from fcplus_wsgi import ConfigError
    from fcplus_wsgi.keys import write_private_jwks
    api = text_of((site / "reference" / "api.html").read_text(encoding="utf-8"))
    for obj in (ConfigError, write_private_jwks):
        first = " ".join((obj.__doc__ or "").split("\n\n")[0].split())
        assert first and first in api, first


def test_dashboard_and_alert_rules_are_on_the_site_as_shipped(site: Path) -> None:
    html = (site / "observability.html").read_text(encoding="utf-8")
    assert html.count("gridPos") == (ROOT / "examples" / "grafana" / "fcplus-dashboard.json").read_text().count(
        "gridPos")
    assert "FcplusNoSuccessfulLogin" in html


def _blocks(markdown: str) -> list[str]:
    return re.findall(r"^```(?:sh|ini|python)\n(.*?)^```", markdown, re.S | re.M)


def test_quickstart_repeats_the_readme_walkthrough() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Your app against the development provider")
    walkthrough = readme[start:readme.index("\n## ", start + 1)]
    quickstart = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    assert _blocks(walkthrough) and _blocks(walkthrough) == _blocks(quickstart.split("## 3.")[0].split("## 2.")[1])
    assert "pip install . && fcplus-wsgi demo" in quickstart


# The qualification checklist of the platforms (shared reference, providers.md section 7), as
# the French guide's table names each item.
QUALIFICATION = ["Bouton conforme", "page de connexion et d'inscription", "autre moyen de connexion",
                 "connexion fonctionne de bout en bout", "inscription via la fédération", "Rapprochement au premier",
                 "Déconnexion", "Ni pop-up ni iframe", "voit qu'il est connecté", "Scopes demandés",
                 "TLS 1.2 ou 1.3", "FranceConnect+** : jetons"]


def test_french_guide_maps_every_qualification_item() -> None:
    guide = (ROOT / "docs" / "guide-integration.md").read_text(encoding="utf-8")
    table = guide[guide.index("## 4. La qualification"):guide.index("## 5. Production")]
    rows = [line for line in table.splitlines() if line.startswith("| **")]
    assert len(rows) == len(QUALIFICATION)
    for item, row in zip(QUALIFICATION, rows, strict=True):
        assert item in row
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert len(cells) == 3 and cells[2], f"{item}: what stays the service's job is said"
    for step in ("DataPass", "Intégration", "Qualification", "Production"):
        assert step in guide


def test_site_loads_nothing_from_other_origins(site: Path) -> None:
    """No web fonts or scripts from elsewhere: the site reads offline and tells no third party."""
    for page in site.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert not re.search(r'<(?:link|script)[^>]+(?:href|src)="https?://', html), page


def test_faq_answers_the_usual_questions(site: Path) -> None:
    faq = text_of((site / "faq.html").read_text(encoding="utf-8"))
    for needle in ("clock_skew", "redirect_uri", "cookie_secure", "never comes back",
                   'fcplus_flow_steps_total{step="login_redirect"}', "keys generate --out"):
        assert needle in faq, needle


def test_documented_commands_exist() -> None:
    """Each `fcplus-wsgi X` the pages name is a command the CLI has."""
    from fcplus_wsgi.cli import build_parser
    parser = build_parser()
    known = {name for action in parser._subparsers._group_actions  # type: ignore[union-attr]
             for name in getattr(action, "choices", {}) or {}}
    texts = [(ROOT / "README.md").read_text(encoding="utf-8")]
    texts += [p.read_text(encoding="utf-8") for p in (ROOT / "docs").rglob("*.md")]
    named = {m for text in texts for m in re.findall(r"(?:`|^\s*)fcplus-wsgi ([a-z][a-z-]+)", text, re.M)}
    assert named and named <= known, sorted(named - known)
