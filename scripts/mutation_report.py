"""Summarise a `bash scripts/mutation` run as Markdown: the score per module and every mutant
that was not killed, with its diff, ready to be classified by review in docs/mutation-report.md.

    python3 scripts/mutation_report.py [build/mutation] > /tmp/report.md

flow.py is scored on its callback and userinfo checks only (the functions below): the rest of
the module is orchestration covered by the HTTP tests, which the mutation run does not use.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FLOW_CHECKS = ("single_params", "_check_callback", "_userinfo", "_finish_login", "_header_alg")
MODULES = ("tokens", "jose", "authorize", "sessions", "providers", "flow")
_LINE = re.compile(r"^\s*(\S+): (.+)$")


def function_of(mutant: str) -> str:
    """`fcplus_wsgi.flow.xǁFlowǁ_userinfo__mutmut_3` -> `_userinfo`."""
    name = mutant.rsplit(".", 1)[-1].split("__mutmut_")[0]
    return name.split("ǁ")[-1] if "ǁ" in name else name.removeprefix("x_")


def in_scope(module: str, mutant: str) -> bool:
    return module != "flow" or function_of(mutant) in FLOW_CHECKS


def results(folder: Path, module: str) -> dict[str, str]:
    path = folder / f"{module}.results.txt"
    if not path.exists():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        match = _LINE.match(line)
        if match and "__mutmut_" in match.group(1) and in_scope(module, match.group(1)):
            found[match.group(1)] = match.group(2)
    return found


def diffs(folder: Path, module: str) -> dict[str, list[str]]:
    path = folder / f"{module}.survivors.txt"
    out: dict[str, list[str]] = {}
    current = None
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        if line.startswith("### "):
            current = line[4:].strip()
            out[current] = []
        elif current and line[:1] in ("+", "-") and not line.startswith(("+++", "---")):
            out[current].append(line)
    return out


def main(folder: Path) -> None:
    print("| module | mutants | killed | not killed | score |")
    print("|---|---|---|---|---|")
    survivors: list[tuple[str, str, str, list[str]]] = []
    for module in MODULES:
        found = results(folder, module)
        if not found:
            print(f"| {module} | not run | | | |")
            continue
        killed = sum(1 for status in found.values() if status == "killed")
        label = f"{module} ({', '.join(FLOW_CHECKS)})" if module == "flow" else module
        print(f"| {label} | {len(found)} | {killed} | {len(found) - killed} | {100 * killed / len(found):.0f} % |")
        changes = diffs(folder, module)
        survivors += [(module, name, status, changes.get(name, [])) for name, status in found.items()
                      if status != "killed"]
    print()
    for _module, name, status, change in survivors:
        print(f"- `{name}` ({status})")
        for line in change:
            print(f"  `{line.strip()[:160]}`")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/mutation"))
