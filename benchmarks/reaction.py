"""How soon the wait for green notices AVAILABLE, and how many calls it makes.

The project's own wait (`tasks.blue_green.wait_until_available`) and
botocore's waiter machinery with a 30-s delay (what `DBClusterAvailable`
does) watch the same deployment from two threads with clients of their own:
reads only, so neither disturbs the other. The lab records when it set
AVAILABLE; the reaction latency is the time from there to the wait's return.

The lab's delays (10, 60, 300 s) fall exactly on a 30-s poll's grid when that
poll starts at creation, which AWS's provisioning times never do: measured so,
the fixed poll would look as if it noticed every change at once. So the fixed
poll starts at a random phase (a seeded offset in [0, 30) s), which stands for
a change at a random moment of its period, as on AWS.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.waiter import WaiterModel, create_waiter_with_client

from lab.harness import (
    CLUSTER_ID,
    TARGET_CLUSTER_PARAMETER_GROUP,
    TARGET_INSTANCE_PARAMETER_GROUP,
    TARGET_VERSION,
    RunningLab,
    running_lab,
)
from tasks import blue_green

FIXED_DELAY_S = 30
PHASES = random.Random(20261127)  # the fixed poll's phase offsets, the same for every run
WAIT_LIMIT_S = 1800

BOTOCORE_STYLE_WAITER = WaiterModel(
    {
        "version": 2,
        "waiters": {
            "BlueGreenAvailable": {
                "operation": "DescribeBlueGreenDeployments",
                "delay": FIXED_DELAY_S,
                "maxAttempts": WAIT_LIMIT_S // FIXED_DELAY_S,
                "acceptors": [
                    {
                        "matcher": "path",
                        "argument": "BlueGreenDeployments[0].Status",
                        "expected": "AVAILABLE",
                        "state": "success",
                    },
                    {
                        "matcher": "path",
                        "argument": "BlueGreenDeployments[0].Status",
                        "expected": "INVALID_CONFIGURATION",
                        "state": "failure",
                    },
                ],
            }
        },
    }
)


@dataclass
class Reaction:
    delay: float
    waiter: str  # "project" or "fixed-30s"
    latency: float  # seconds from the lab's AVAILABLE to the wait's return
    calls: int  # DescribeBlueGreenDeployments calls of this wait


def counted_client(lab: RunningLab) -> tuple[Any, list[float]]:
    """An RDS client of its own, and the list its describe calls are counted in."""
    rds = lab.client("rds")
    calls: list[float] = []
    rds.meta.events.register(
        "before-call.rds.DescribeBlueGreenDeployments", lambda **_: calls.append(time.time())
    )
    return rds, calls


def measure_once(lab_dir: Path, delay: float) -> list[Reaction]:
    """One deployment on a fresh lab, watched by both waits."""
    with running_lab(lab_dir, provisioning_delay=delay) as lab:
        lab.unmanage_password()
        source = lab.cluster(CLUSTER_ID)["DBClusterArn"]
        ours, our_calls = counted_client(lab)
        fixed, fixed_calls = counted_client(lab)
        noticed: dict[str, float] = {}
        errors: list[BaseException] = []
        deployment_id = lab.rds.create_blue_green_deployment(
            BlueGreenDeploymentName="bench-reaction",
            Source=source,
            TargetEngineVersion=TARGET_VERSION,
            TargetDBClusterParameterGroupName=TARGET_CLUSTER_PARAMETER_GROUP,
            TargetDBParameterGroupName=TARGET_INSTANCE_PARAMETER_GROUP,
        )["BlueGreenDeployment"]["BlueGreenDeploymentIdentifier"]

        def project_wait() -> None:
            blue_green.wait_until_available(deployment_id, WAIT_LIMIT_S, rds=ours)
            noticed["project"] = time.time()

        phase = PHASES.uniform(0, FIXED_DELAY_S)

        def fixed_wait() -> None:
            time.sleep(phase)
            waiter = create_waiter_with_client("BlueGreenAvailable", BOTOCORE_STYLE_WAITER, fixed)
            waiter.wait(BlueGreenDeploymentIdentifier=deployment_id)
            noticed["fixed-30s"] = time.time()

        def guarded(body: Any) -> Any:
            def run() -> None:
                try:
                    body()
                except BaseException as error:  # reported below, with the lab still up
                    errors.append(error)

            return run

        threads = [threading.Thread(target=guarded(w)) for w in (project_wait, fixed_wait)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        available = lab.control("GET", "/_lab/deployment-status-times")[deployment_id]["AVAILABLE"]
        return [
            Reaction(delay, "project", noticed["project"] - available, len(our_calls)),
            Reaction(delay, "fixed-30s", noticed["fixed-30s"] - available, len(fixed_calls)),
        ]


def measure_lane(work_dir: Path, delays: list[float], out: list[Reaction]) -> None:
    """Deployments one after the other, each on a fresh lab (one lane of the benchmark)."""
    for index, delay in enumerate(delays):
        out.extend(measure_once(work_dir / f"lab-{delay:g}s-{index}", delay))
