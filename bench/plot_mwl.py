"""Plot the C-FIND latency figures written by ``mwl_find.py`` (docs/img/mwl_latency.png) and
print the Markdown table of docs/benchmarks.md, so the published numbers come from one file.

    python bench/plot_mwl.py /tmp/mwl_find.json --out docs/img/mwl_latency.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

SERIES = [("fhirmwl", "assoc", "C0", "-"), ("fhirmwl", "findscu", "C0", "--"),
          ("wlmscpfs", "assoc", "C3", "-"), ("wlmscpfs", "findscu", "C3", "--")]  # fmt: skip


def best(entries: list[dict[str, Any]], key: str) -> float:
    """Lowest of the repeated runs (the host is shared; the minimum is the least disturbed)."""
    return min(e[key] for e in entries)


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    sizes = sorted(int(n) for n in results if int(n) > 0)
    for ax, query in zip(axes, ("typical", "broad"), strict=True):
        for server, client, color, style in SERIES:
            xs = [n for n in sizes if server in results[str(n)]]
            if not xs:
                continue
            cell = [results[str(n)][server][query][client] for n in xs]
            p50 = [best(c, "p50") for c in cell]
            p95 = [best(c, "p95") for c in cell]
            ax.plot(xs, p50, style, color=color, marker="o", label=f"{server} {client} p50")
            ax.plot(
                xs, p95, style, color=color, marker="^", alpha=0.4, label=f"{server} {client} p95"
            )
        floor = results.get("0", {}).get("fhirmwl", {}).get("typical", {}).get("assoc")
        if floor:
            ax.axhline(
                best(floor, "p50"), color="grey", lw=0.8, ls=":", label="fhirmwl empty floor"
            )
        ax.set(xscale="log", yscale="log", xlabel="scheduled steps N", title=f"{query} query")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("C-FIND latency (ms)")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def table(results: dict[str, Any]) -> str:
    lines = ["| N | query | client | fhirmwl p50 / p95 (ms) | wlmscpfs p50 / p95 (ms) | matches |",
             "|---:|---|---|---:|---:|---:|"]  # fmt: skip
    for n in sorted(results, key=int):
        for query in ("typical", "broad"):
            for client in ("assoc", "findscu"):
                cells = []
                for server in ("fhirmwl", "wlmscpfs"):
                    runs = results[n].get(server, {}).get(query, {}).get(client)
                    cells.append("; ".join(f"{r['p50']:.1f} / {r['p95']:.1f}" for r in runs)
                                 if runs else "—")  # fmt: skip
                runs = results[n]["fhirmwl"][query][client]
                lines.append(f"| {int(n):,} | {query} | {client} | {cells[0]} | {cells[1]} |"
                             f" {runs[0]['matches_mean']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def merge(into: dict[str, Any], result: dict[str, Any]) -> None:
    """Add a later file's runs to the per-(server, query, client) run lists."""
    for key, value in result.items():
        if key not in ("fhirmwl", "wlmscpfs") or key not in into:
            into.setdefault(key, value)
            continue
        for query, clients in value.items():
            if isinstance(clients, dict):
                for client, runs in clients.items():
                    into[key][query].setdefault(client, []).extend(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("results", type=Path, nargs="+", help="JSON files of mwl_find.py (merged)")
    ap.add_argument("--out", type=Path, default=Path("docs/img/mwl_latency.png"))
    args = ap.parse_args()
    merged: dict[str, Any] = {}
    for path in args.results:
        for n, result in json.loads(path.read_text()).items():
            merge(merged.setdefault(n, {}), result)
    plot(merged, args.out)
    print(table(merged))


if __name__ == "__main__":
    main()
