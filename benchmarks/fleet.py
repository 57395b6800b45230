"""Fleet benchmark: 1, 5 and 20 clusters on the lab, with and without throttling.

For each size it starts a fresh lab of that many clusters (provisioning delay
30 s), records how long `lab up` took and the memory its processes hold (PSS,
so PostgreSQL's shared buffers count once), then runs the fleet flow with
every cluster at once and a shared AWS rate limit, approvals answered through
the API as a person would. From the lab's call log: AWS calls per cluster and
the peak number of calls in any sliding second, against the limit. The same
again on a fresh lab with 10 % of all AWS calls throttled.

    .venv/bin/python -m benchmarks.fleet [--sizes 1 5 20] [--rate 20] [--delay 30]

Writes its table into benchmarks/RESULTS.md between the fleet markers, and
nothing else of that file.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- fleet:start -->", "<!-- fleet:end -->"
REPO = Path(__file__).resolve().parents[1]


def pss_mb(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def lab_processes(info: dict[str, Any]) -> set[int]:
    """The lab's AWS API process and every PostgreSQL process (postmasters and children)."""
    import psutil

    roots = {pid for pid in info["pids"].values() if pid}
    found = set()
    for pid in roots:
        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            continue
        found.add(pid)
        found.update(child.pid for child in process.children(recursive=True))
    return found


def peak_per_second(times: list[float]) -> int:
    times = sorted(times)
    peak = first = 0
    for last, moment in enumerate(times):
        while moment - times[first] >= 1.0:
            first += 1
        peak = max(peak, last - first + 1)
    return peak


def fleet_settings() -> dict[str, Any]:
    import yaml

    data = yaml.safe_load((REPO / "deployments" / "lab.yaml").read_text())
    data.pop("cluster_identifier")
    data["terraform"] = {"enabled": False}
    return data


def one_run(size: int, rate: float, delay: float, throttle: bool, root: Path) -> dict[str, Any]:
    from aurora_bg.cli.fleet_runner import run_fleet
    from aurora_bg.fleet_params import FleetParameters
    from lab import control
    from lab.harness import RunningLab
    from lab.topology import cluster_identifier

    lab_dir = root / f"lab-{size}-{'throttled' if throttle else 'clean'}"
    began = time.monotonic()
    info = control.up(lab_dir, 1, delay, clusters=size)
    up_seconds = time.monotonic() - began
    try:
        time.sleep(2)  # let start-up settle before measuring memory
        memory = pss_mb(lab_processes(info))
        print(f"lab of {size}: up in {up_seconds:.1f} s, {memory:.0f} MB (PSS)", flush=True)
        lab = RunningLab(info=info, dir=Path(info["lab_dir"]))
        os.environ.update(lab.env)
        if throttle:
            lab.arm_fault("*", "throttle", count=-1, probability=0.1)
        clusters = [cluster_identifier(i) for i in range(size)]
        params = FleetParameters.model_validate(
            {
                "clusters": clusters,
                "settings": fleet_settings(),
                "max_parallel": size,
                "aws_calls_per_second": rate,
            }
        )
        since = time.time()
        started = time.monotonic()
        summary = run_fleet(params, auto_approve=True)
        wall = time.monotonic() - started
        calls = lab.calls(since)
    finally:
        control.down(lab_dir)
    upgraded = sum(row["outcome"] == "upgraded" for row in summary["clusters"])
    throttled = sum(1 for c in calls if c.get("error") == "injected throttle")
    return {
        "clusters": size,
        "throttling": "10 %" if throttle else "none",
        "lab_up_s": round(up_seconds, 1),
        "lab_memory_mb": round(memory),
        "wall_s": round(wall, 1),
        "calls_per_cluster": round(len(calls) / size, 1),
        "throttled_calls": throttled,
        "peak_per_s": peak_per_second([c["time"] for c in calls]),
        "rate": rate,
        "upgraded": f"{upgraded}/{size}",
        "message": summary["message"],
    }


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    clean = {r["clusters"]: r for r in rows if r["throttling"] == "none"}
    lines = []
    if 1 in clean and max(clean) > 1:
        big = clean[max(clean)]
        ratio = big["wall_s"] / clean[1]["wall_s"]
        lines.append(
            f"- fleet of {big['clusters']} wall time ≤ 2× single: "
            f"{'met' if ratio <= 2 else 'not met'} ({ratio:.2f}×)"
        )
        # Compared at equal throttling: a throttled call is retried, so it costs an attempt.
        singles = {r["throttling"]: r for r in rows if r["clusters"] == 1}
        spread = max(
            abs(r["calls_per_cluster"] / singles[r["throttling"]]["calls_per_cluster"] - 1)
            for r in rows
            if r["throttling"] in singles
        )
        lines.append(
            f"- API calls per cluster within 10 % of single (same throttling): "
            f"{'met' if spread <= 0.10 else 'not met'} (largest difference {spread:.0%})"
        )
    over = [r for r in rows if r["peak_per_s"] > r["rate"]]
    lines.append(
        "- peak rate never above the limit: "
        + ("met" if not over else "not met (" + ", ".join(_where(r) for r in over) + ")")
    )
    failed = [
        r
        for r in rows
        if r["throttling"] != "none" and r["upgraded"].split("/")[0] != str(r["clusters"])
    ]
    lines.append(
        "- no failure under throttling: "
        + ("met" if not failed else "not met (" + ", ".join(_where(r) for r in failed) + ")")
    )
    return lines


def _where(row: dict[str, Any]) -> str:
    return f"{row['clusters']} clusters, throttling {row['throttling']}: {row['peak_per_s']}/s"


def table(rows: list[dict[str, Any]], load: str) -> str:
    header = (
        "| clusters | throttling | lab up (s) | lab memory (MB, PSS) | fleet wall (s) "
        "| AWS calls per cluster | throttled calls | peak calls/s (limit) | upgraded |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['clusters']} | {r['throttling']} | {r['lab_up_s']} | {r['lab_memory_mb']} "
        f"| {r['wall_s']} | {r['calls_per_cluster']} | {r['throttled_calls']} "
        f"| {r['peak_per_s']} ({r['rate']:g}) | {r['upgraded']} |\n"
        for r in rows
    )
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    return (
        "## Fleet\n\n"
        "`python -m benchmarks.fleet`: a lab of N clusters (each its own blue and green "
        "PostgreSQL), provisioning delay 30 s, the fleet flow with every cluster at once, "
        "approvals answered through the API, one shared AWS rate limit.\n\n"
        f"Machine: {machine}; load average at the start {load}. Shared with other work while "
        "measured.\n\n" + header + body + "\n" + "\n".join(verdicts(rows)) + "\n"
    )


def write_results(text: str) -> None:
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{START}\n{text}{END}"
    if START in current and END in current:
        before, rest = current.split(START, 1)
        after = rest.split(END, 1)[1]
        RESULTS.write_text(before + block + after)
    else:
        RESULTS.write_text(current.rstrip("\n") + "\n\n" + block + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 20])
    parser.add_argument("--rate", type=float, default=20.0, help="AWS calls per second")
    parser.add_argument("--delay", type=float, default=30.0, help="provisioning delay (s)")
    parser.add_argument("--no-throttle", action="store_true", help="skip the throttled runs")
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp,
        prefect_test_harness(server_startup_timeout=120),
    ):
        for size in args.sizes:
            for throttle in (False,) if args.no_throttle else (False, True):
                row = one_run(size, args.rate, args.delay, throttle, Path(tmp))
                print(row, flush=True)
                rows.append(row)
                write_results(table(rows, load))
    print(table(rows, load))


if __name__ == "__main__":
    main()
