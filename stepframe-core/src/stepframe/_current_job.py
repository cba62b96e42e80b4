"""Where a step's code runs: `current_job`, for steps that span several hosts.

A step on several instances (``instance_count > 1``) runs its function on every host.
Step code asks `current_job()` which host it is on, how many there are, and where the
first one (the rendezvous for PyTorch DDP) is.  Every host and process agrees on one
rule: the process with ``rank == 0`` is the one whose return value becomes the step's
outputs; the others run to the end and their return values are dropped.

Read from, in order: torchrun's variables (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) for
the process, SageMaker's (``SM_HOSTS``, ``SM_CURRENT_HOST``) or its resource file
(``/opt/ml/input/config/resourceconfig.json``) for the hosts.  Anywhere else (a local or
docker job, a test) the job is one process on one host.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import attrs

__all__ = ["RESOURCE_CONFIG", "JobPlacement", "current_job"]

#: SageMaker's description of the training cluster, in every training container.
RESOURCE_CONFIG = Path("/opt/ml/input/config/resourceconfig.json")
#: The rendezvous port torchrun uses on the first host unless MASTER_PORT says otherwise.
DEFAULT_MASTER_PORT = 29500


@attrs.frozen
class JobPlacement:
    """Where this process of a step's job runs.

    :param hosts: every host of the job, in SageMaker's order (``algo-1``, ``algo-2``...).
    :param current_host: this process's host.
    :param host_rank: the host's index in ``hosts``.
    :param rank: this process's rank among all processes of the job (under torchrun,
        its ``RANK``; else the host's rank).
    :param world_size: processes in the job (under torchrun ``WORLD_SIZE``; else hosts).
    :param local_rank: this process's index on its host (``LOCAL_RANK``; else 0).
    :param master_addr: the first host: where processes meet (``MASTER_ADDR``).
    :param master_port: the port they meet on (``MASTER_PORT``).
    """

    hosts: tuple[str, ...]
    current_host: str
    host_rank: int
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int

    @property
    def num_hosts(self) -> int:
        return len(self.hosts)

    @property
    def is_main(self) -> bool:
        """Whether this is the process whose return value becomes the step's outputs."""
        return self.rank == 0


def _hosts(environ: Mapping[str, str], resource_config: Path) -> tuple[tuple[str, ...], str]:
    if environ.get("SM_HOSTS") and environ.get("SM_CURRENT_HOST"):
        hosts = json.loads(environ["SM_HOSTS"])
        return tuple(str(host) for host in hosts), environ["SM_CURRENT_HOST"]
    try:
        config = json.loads(resource_config.read_text())
    except (OSError, ValueError):
        return ("localhost",), "localhost"
    return tuple(str(host) for host in config["hosts"]), str(config["current_host"])


def current_job(
    environ: Mapping[str, str] | None = None, *, resource_config: Path = RESOURCE_CONFIG
) -> JobPlacement:
    """Where the calling step's code runs.

    :param environ: the variables to read (default ``os.environ``).
    :param resource_config: SageMaker's resource file, read when ``SM_HOSTS`` is unset.
    :raises ValueError: when the variables contradict each other (the current host is
        not among the hosts).
    """
    env = os.environ if environ is None else environ
    hosts, current = _hosts(env, resource_config)
    if current not in hosts:
        raise ValueError(f"the current host {current!r} is not among the job's hosts {hosts}")
    host_rank = hosts.index(current)
    under_torchrun = "RANK" in env and "WORLD_SIZE" in env
    return JobPlacement(
        hosts=hosts,
        current_host=current,
        host_rank=host_rank,
        rank=int(env["RANK"]) if under_torchrun else host_rank,
        world_size=int(env["WORLD_SIZE"]) if under_torchrun else len(hosts),
        local_rank=int(env.get("LOCAL_RANK", "0")),
        master_addr=env.get("MASTER_ADDR") or hosts[0],
        master_port=int(env.get("MASTER_PORT") or DEFAULT_MASTER_PORT),
    )
