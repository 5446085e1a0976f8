"""The benchmark command (docs/benchmarks.md) runs end to end in --quick mode, so its code
cannot rot unseen. It checks that every part ran and produced its figures, never how fast
anything was: timings belong in the report, not in a test."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
HEADINGS = ("1. Per-request overhead", "2. Throughput", "3. Login callback CPU", "4. End-to-end logins", "5. Scale")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def test_quick_benchmark_runs_every_part_and_reports_ratios(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--json", str(results)],
                          cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-1500:] + done.stderr[-3000:]
    for heading in HEADINGS:
        assert heading in done.stdout
    assert "cores" in done.stdout and "Traceback" not in done.stderr

    data = json.loads(results.read_text())
    assert data["machine"]["cores"] >= 1 and data["machine"]["python"]
    r = data["results"]

    memory = r["overhead"]["stores"]["memory"]
    assert _finite(memory["variants"]["off"]["budget_used"]) and _finite(memory["read_us"])
    assert _finite(r["overhead"]["stores"]["sqlite"]["variants"]["off"]["added_us"])
    if shutil.which("redis-server"):
        assert _finite(r["overhead"]["stores"]["redis"]["variants"]["off"]["own_us"])
        assert _finite(r["scale"]["stores"]["redis"]["worst_ratio"])

    if shutil.which("wrk"):
        apps = r["throughput"]["servers"]["waitress"]["apps"]
        assert apps["bare"]["ratio"] == 1.0 and _finite(apps["sqlite"]["ratio"])
        assert apps["sqlite"]["non_2xx"] == 0 and apps["sqlite"]["socket_errors"] == 0
        # The middleware's CPU per call inside the server, from calls timed in the server processes.
        assert apps["bare"]["calls"] > 0 and apps["sqlite"]["calls"] > 0
        assert _finite(apps["sqlite"]["call_us"]) and _finite(apps["sqlite"]["call_added_us"])
    else:
        assert "wrk" in r["throughput"]["skipped"]

    for alg in ("RSA-OAEP", "ECDH-ES"):
        login = r["login"]["algs"][alg]
        assert _finite(login["ratio"]) and set(login["stages_us"]) >= {"open id_token", "seal + store put"}

    e2e = r["e2e"]["algs"]["RSA-OAEP"]
    assert e2e["logins"] >= 1 and _finite(e2e["logins_per_s"])
    assert {"token", "id_token", "userinfo", "session"} <= set(e2e["steps_ms"])
    assert e2e["profile"]["groups"] and e2e["profile"]["top"]

    sqlite = r["scale"]["stores"]["sqlite"]
    assert list(sqlite["rows"]) == ["100", "1000"] and _finite(sqlite["rows"]["1000"]["bytes_per_session"])

    # The saved results print again (and plot, where matplotlib is installed) without a rerun.
    again = subprocess.run([sys.executable, "-m", "benchmarks", "--report", str(results), "--plots", str(tmp_path)],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert all(heading in again.stdout for heading in HEADINGS)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in again.stdout
    else:
        assert (tmp_path / "overhead.png").stat().st_size > 1000
