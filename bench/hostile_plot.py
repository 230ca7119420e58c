"""The picture of a bench/hostile.py run: each well-behaved request's latency against its
scheduled send time, clean and hostile (and control) rounds overlaid, one panel per
configuration, with each run's p95 as a line. Bursts of the seeded schedule show in both; what
the hostile clients add shows as the red points above the blue."""

from __future__ import annotations

from pathlib import Path

from pyplot import pyplot

COLORS = {"clean": "tab:blue", "hostile": "tab:red", "control": "tab:green"}


def plot(result: dict, png: Path) -> Path | None:
    """Write the picture of `result` (hostile.py's JSON) to `png`; None without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    configs = result["configurations"]
    fig, axes = plt.subplots(len(configs), 1, figsize=(12, 3.6 * len(configs)), squeeze=False)
    for ax, (name, config) in zip(axes[:, 0], configs.items(), strict=True):
        for kind, run in config["runs"].items():
            well = run["well_behaved"]
            xs, ys, offset = [], [], 0.0
            for timeline in well.get("timelines", []):
                xs += [offset + due for due, _ in timeline]
                ys += [latency for _, latency in timeline]
                offset += max((due for due, _ in timeline), default=0.0)
            ax.scatter(xs, ys, s=5, alpha=0.5, color=COLORS[kind], label=kind)
            if well["p95_s"] is not None:
                ax.axhline(
                    well["p95_s"],
                    color=COLORS[kind],
                    linestyle="--",
                    linewidth=1,
                    label=f"{kind} p95 {well['p95_s']:.3f} s",
                )
        ratio = config["summary"].get("p95_ratio")
        ax.set_title(f"{name}: well-behaved p95 hostile/clean {ratio}")
        ax.set_ylabel("latency (s)")
        ax.set_yscale("log")
        ax.legend(loc="upper right", fontsize=8)
    axes[-1, 0].set_xlabel("scheduled send time (s, rounds end to end)")
    env = result["environment"]
    placement = (
        f"; the server on CPUs {env['server_cpus']}, the clients on {env['client_cpus']}"
        if env.get("server_cpus", "all") != "all"
        else ""
    )
    fig.suptitle(
        f"Hostile clients, {env['cpu']} ({env['cpus']} CPUs{placement}), {result['timestamp']}"
    )
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
