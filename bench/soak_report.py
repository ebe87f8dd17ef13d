"""Output of bench/soak.py: the RSS curve as CSV and PNG, before/after plots, tracemalloc diffs."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from bench.load import OUT


@dataclass
class Sample:
    """One reading of the server's memory (or an event: a swap, a restart) during a soak."""

    minute: float
    rss_mib: float
    threads: int
    requests: int
    errors: int
    event: str = ""


def write_outputs(label: str, samples: list[Sample], summary: str, title: str) -> None:
    with (OUT / f"soak-{label}.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["minute", "rss_mib", "threads", "requests", "errors", "event"])
        for s in samples:
            w.writerow([s.minute, s.rss_mib, s.threads, s.requests, s.errors, s.event])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    pts = [s for s in samples if not s.event]
    ax.plot([s.minute for s in pts], [s.rss_mib for s in pts], lw=1.2, label="server RSS")
    for s in samples:
        if s.event.startswith("swap") and " done" in s.event:
            ax.axvline(s.minute, color="tab:orange", lw=0.8, ls="--")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MiB)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(["server RSS", "hot swap"] if any(s.event for s in samples) else None)
    fig.text(0.01, 0.01, summary, fontsize=6.5)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(OUT / f"soak-{label}.png", dpi=110)
    plt.close(fig)


def plot_compare(labels: list[str]) -> Path:
    """One plot of several runs' RSS curves (from their CSVs), e.g. before and after a fix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for label in labels:
        with (OUT / f"soak-{label}.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        pts = [(float(r["minute"]), float(r["rss_mib"])) for r in rows if not r["event"]]
        (line,) = ax.plot(*zip(*pts, strict=True), lw=1.2, label=label)
        for r in rows:
            if " done" in r["event"]:
                ax.axvline(float(r["minute"]), color=line.get_color(), lw=0.7, ls="--")
    ax.set_xlabel("minutes (dashed: hot swaps)")
    ax.set_ylabel("server RSS (MiB)")
    ax.set_title("rag serve soak: " + " vs ".join(labels), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = OUT / f"soak-compare-{'-'.join(labels)}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare_traces(folder: Path, label: str, top: int = 25) -> str:
    import tracemalloc

    files = sorted(folder.glob("trace-*.pickle"))
    if len(files) < 2:
        return "tracemalloc: fewer than two snapshots"
    keep = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen *>"),
    ]
    first = tracemalloc.Snapshot.load(str(files[0])).filter_traces(keep)
    last = tracemalloc.Snapshot.load(str(files[-1])).filter_traces(keep)
    diffs = last.compare_to(first, "lineno")
    total = sum(d.size_diff for d in diffs) / 2**20
    lines = [
        f"tracemalloc {files[0].name} -> {files[-1].name}: traced Python memory "
        f"{sum(s.size for s in first.statistics('filename')) / 2**20:.1f} -> "
        f"{sum(s.size for s in last.statistics('filename')) / 2**20:.1f} MiB "
        f"(net {total:+.2f} MiB)"
    ]
    lines += [str(d) for d in diffs[:top]]
    text = "\n".join(lines)
    (OUT / f"soak-{label}-tracemalloc.txt").write_text(text + "\n")
    return text
