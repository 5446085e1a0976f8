"""docs/providers.md names the test that proves each row: those tests must exist, and
every preset the code has must be in the table's documentation."""

from __future__ import annotations

import re
from pathlib import Path

from fcplus_wsgi.providers import ALIASES, PRESETS

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "providers.md").read_text(encoding="utf-8")


def test_every_cited_test_exists() -> None:
    cited = re.findall(r"`(tests/[\w/]+\.py)((?:::\w+)?)`", DOC)
    assert len(cited) > 20
    for path, name in cited:
        source = (ROOT / path).read_text(encoding="utf-8")
        if name:
            assert re.search(rf"^def {name[2:]}\(", source, re.M), f"{path}{name} is cited but does not exist"
    # A bare `::name` continues the file cited before it in the same cell.
    for follow in re.findall(r"`::(\w+)`", DOC):
        assert any(re.search(rf"^def {follow}\(", (ROOT / p).read_text(encoding="utf-8"), re.M)
                   for p, _ in cited), f"::{follow} is cited but exists in no cited file"


def test_configuration_doc_names_every_preset_and_alias() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in (*PRESETS, *ALIASES):
        assert f"`{name}`" in doc or (name.startswith("agentconnect-") and "`agentconnect-*`" in doc), name
