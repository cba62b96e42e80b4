"""Where a step's code runs: `current_job`, for steps that span several hosts.

A step on several instances (``instance_count > 1``, ``replica_count > 1``) runs its
function on every host.  Step code asks `current_job()` which host it is on, how many
there are, and where the first one (the rendezvous for PyTorch DDP) is.  Every host and
process agrees on one rule: the process with ``rank == 0`` is the one whose return value
becomes the step's outputs; the others run to the end and their return values are
dropped.

The hosts come from the first of these that is set (`stepframe._cluster_env` reads each):
SageMaker's ``SM_HOSTS``/``SM_CURRENT_HOST``, Vertex AI's ``CLUSTER_SPEC``, AzureML's
``AZUREML_NODE_COUNT``/``NODE_RANK``/``AZ_BATCH*`` variables, SageMaker's resource file
(``/opt/ml/input/config/resourceconfig.json``).  Anywhere else (a local or docker job, a
test) the job is one host.  The process's own rank then comes from its launcher, if one
started it: torchrun's (or AzureML's PyTorch distribution's) ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK``, else Open MPI's ``OMPI_COMM_WORLD_*`` (AzureML's MPI distribution); else
the process is its host's only one and its rank is the host's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

from stepframe._cluster_env import Cluster, azureml_cluster, sagemaker_cluster, vertex_cluster

__all__ = ["RESOURCE_CONFIG", "JobPlacement", "current_job"]

#: SageMaker's description of the training cluster, in every training container.
RESOURCE_CONFIG = Path("/opt/ml/input/config/resourceconfig.json")
#: The rendezvous port torchrun uses on the first host unless MASTER_PORT says otherwise.
DEFAULT_MASTER_PORT = 29500


@attrs.frozen
class JobPlacement:
    """Where this process of a step's job runs.

    :param hosts: every host of the job, the first one first: SageMaker's ``algo-1``,
        ``algo-2``...; Vertex AI's chief then its workers; AzureML's ``node-0``...
    :param current_host: this process's host.
    :param host_rank: the host's index in ``hosts``.
    :param rank: this process's rank among all processes of the job (under torchrun,
        its ``RANK``; under Open MPI ``OMPI_COMM_WORLD_RANK``; else the host's rank).
    :param world_size: processes in the job (the launcher's; else hosts).
    :param local_rank: this process's index on its host (the launcher's; else 0).
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


def _cluster(environ: Mapping[str, str], resource_config: Path) -> Cluster:
    """The job's hosts from the first platform whose description is set (see above)."""
    found = (
        sagemaker_cluster(environ, None)
        or vertex_cluster(environ)
        or azureml_cluster(environ)
        or sagemaker_cluster(environ, resource_config)
    )
    return found or Cluster(("localhost",), "localhost")


def _process_rank(environ: Mapping[str, str]) -> tuple[int, int, int] | None:
    """(rank, world size, local rank) from the launcher that started this process."""
    for rank, size, local in (
        ("RANK", "WORLD_SIZE", "LOCAL_RANK"),
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ):
        if rank in environ and size in environ:
            return int(environ[rank]), int(environ[size]), int(environ.get(local) or 0)
    return None


def current_job(
    environ: Mapping[str, str] | None = None, *, resource_config: Path = RESOURCE_CONFIG
) -> JobPlacement:
    """Where the calling step's code runs.

    :param environ: the variables to read (default ``os.environ``).
    :param resource_config: SageMaker's resource file, read when no platform's variables
        are set.
    :raises ValueError: when the variables contradict each other (the current host is
        not among the hosts) or cannot be read (a ``CLUSTER_SPEC`` that is not JSON).
    """
    env = os.environ if environ is None else environ
    cluster = _cluster(env, resource_config)
    hosts, current = cluster.hosts, cluster.current_host
    if current not in hosts:
        raise ValueError(f"the current host {current!r} is not among the job's hosts {hosts}")
    host_rank = hosts.index(current)
    rank, world_size, local_rank = _process_rank(env) or (host_rank, len(hosts), 0)
    return JobPlacement(
        hosts=hosts,
        current_host=current,
        host_rank=host_rank,
        rank=rank,
        world_size=world_size,
        local_rank=local_rank,
        master_addr=env.get("MASTER_ADDR") or cluster.master_addr or hosts[0],
        master_port=int(env.get("MASTER_PORT") or cluster.master_port or DEFAULT_MASTER_PORT),
    )
