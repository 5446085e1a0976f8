"""PNG plots of a run's results (matplotlib, `pip install -e .[bench]`), kept small:
few colours, palette PNGs."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

COLORS = ["#3b6ea5", "#e07b39", "#5a9e4b", "#b04a5a", "#7d6aa8", "#8c8c8c"]


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _save(fig: Any, path: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    buffer.seek(0)
    image = Image.open(buffer).convert("RGB").quantize(colors=48)
    image.save(path, format="PNG", optimize=True)


def _overhead(result: dict[str, Any], plt: Any, path: Path) -> bool:
    stores = [(n, e) for n, e in result["stores"].items() if "variants" in e]
    if not stores:
        return False
    plugins = list(stores[0][1]["variants"])
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    width = 0.8 / len(plugins)
    for i, plugin in enumerate(plugins):
        xs = [j + i * width for j in range(len(stores))]
        ax.bar(xs, [e["variants"][plugin]["added_us"] for _, e in stores], width, label=f"plugins {plugin}",
               color=COLORS[i % len(COLORS)])
    for j, (_, e) in enumerate(stores):
        ax.hlines(e["target_us"], j - width / 2, j - width / 2 + 0.8, colors="black", linestyles="dashed")
        ax.bar(j - width / 2 - 0.02, e["read_us"], 0.04, color="black")
    ax.set_xticks([j + width * (len(plugins) - 1) / 2 for j in range(len(stores))], [n for n, _ in stores])
    ax.set_ylabel("µs added per request")
    ax.set_title("Per-request overhead (dashed: target; black: raw store read)", fontsize=9)
    ax.legend(fontsize=7)
    _save(fig, path)
    plt.close(fig)
    return True


def _throughput(result: dict[str, Any], plt: Any, path: Path) -> bool:
    if "servers" not in result or not result["servers"]:
        return False
    fig, ax = plt.subplots(figsize=(7.2, 3.0))
    x = 0.0
    ticks: list[float] = []
    labels: list[str] = []
    for i, (server, info) in enumerate(result["servers"].items()):
        first = True
        for name, e in info["apps"].items():
            if name == "bare":
                continue
            baseline = name.startswith("read:")
            ax.bar(x, e["ratio"], color=COLORS[i % len(COLORS)], alpha=0.45 if baseline else 1.0,
                   hatch="//" if baseline else None, label=server if first else None)
            first = False
            ticks.append(x)
            labels.append(name.replace("read:", "raw read\n"))
            x += 1
        x += 0.6
    ax.axhline(0.90, color="black", linestyle="dashed", linewidth=1)
    ax.set_xticks(ticks, labels, fontsize=7)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("wrapped / bare req/s")
    ax.set_title("Throughput under a real server (dashed: target 0.90; hatched: bare app + raw store read)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(fig, path)
    plt.close(fig)
    return True


def _login(result: dict[str, Any], plt: Any, path: Path) -> bool:
    algs = result.get("algs") or {}
    if not algs:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    names = list(algs)
    for j, alg in enumerate(names):
        e = algs[alg]
        ax.barh(j + 0.2, e["floor_us"], 0.35, color=COLORS[5], label="floor (cryptography)" if j == 0 else None)
        ax.barh(j - 0.2, e["ours_us"], 0.35, color=COLORS[0], label="fcplus_wsgi" if j == 0 else None)
        ax.vlines(e["floor_us"] * 1.3, j - 0.4, j + 0.4, colors="black", linestyles="dashed")
        ax.text(max(e["ours_us"], e["floor_us"] * 1.3), j - 0.2, f"  {e['ratio']:.2f}x", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("µs CPU per login callback (dashed: 1.3x floor)")
    ax.set_title("Login callback CPU vs its cryptography", fontsize=9)
    ax.set_xlim(0, max(e["ours_us"] for e in algs.values()) * 1.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(fig, path)
    plt.close(fig)
    return True


def _e2e(result: dict[str, Any], plt: Any, path: Path) -> bool:
    algs = result.get("algs") or {}
    if not algs:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    names = list(algs)
    parts = ["service", "provider", "browser"]
    for j, alg in enumerate(names):
        left = 0.0
        for i, part in enumerate(parts):
            value = algs[alg]["cpu_ms_per_login"].get(part) or 0.0
            ax.barh(j, value, 0.5, left=left, color=COLORS[i], label=part if j == 0 else None)
            left += value
        ax.text(left, j, f"  {algs[alg]['logins_per_s']:.1f} logins/s", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("CPU ms per end-to-end login, by process")
    ax.set_title("End-to-end logins against the development provider", fontsize=9)
    ax.set_xlim(0, max(sum(v or 0.0 for v in e["cpu_ms_per_login"].values()) for e in algs.values()) * 1.35)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    _save(fig, path)
    plt.close(fig)
    return True


def _scale(result: dict[str, Any], plt: Any, path: Path) -> bool:
    stores = [(n, e) for n, e in result.get("stores", {}).items() if "rows" in e]
    if not stores:
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 2.8))
    for i, (name, e) in enumerate(stores):
        sizes = [int(n) for n in e["rows"]]
        left.plot(sizes, [r["ratio"] for r in e["rows"].values()], marker="o", color=COLORS[i], label=name)
        right.plot(sizes, [r["bytes_per_session"] for r in e["rows"].values()], marker="o", color=COLORS[i],
                   label=name)
    left.axhline(1.2, color="black", linestyle="dashed", linewidth=1)
    left.set_xscale("log")
    left.set_ylim(0, max(1.5, max(r["ratio"] for _, e in stores for r in e["rows"].values()) * 1.1))
    left.set_xlabel("stored sessions")
    left.set_ylabel("request cost / smallest")
    left.set_title("Per-request cost (dashed: +20%)", fontsize=9)
    right.set_xscale("log")
    right.set_ylim(bottom=0)
    right.set_xlabel("stored sessions")
    right.set_ylabel("bytes per session")
    right.set_title("Storage per session", fontsize=9)
    left.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return True


def write_plots(results: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    makers = {"overhead": _overhead, "throughput": _throughput, "login": _login, "e2e": _e2e, "scale": _scale}
    written = []
    for section, maker in makers.items():
        if section in results and "skipped" not in results[section]:
            path = folder / f"{section}.png"
            if maker(results[section], plt, path):
                written.append(path)
    return written
