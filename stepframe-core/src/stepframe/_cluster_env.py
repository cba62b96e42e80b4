"""What each platform tells a job's container about its cluster, read into one shape.

Each reader returns the job's hosts, this container's host and, where the platform names
it, the rendezvous address; or None when its platform's variables are absent.  They only
read: `stepframe._current_job` decides which one applies and adds the process's own rank.

- SageMaker: ``SM_HOSTS`` (JSON list) and ``SM_CURRENT_HOST``, or the resource file
  ``/opt/ml/input/config/resourceconfig.json`` (``hosts``, ``current_host``).
- Vertex AI: ``CLUSTER_SPEC``, JSON ``{"cluster": {"workerpool0": ["host:port"],
  "workerpool1": [...], ...}, "task": {"type": "workerpool1", "index": 0}}``.  Worker
  pool 0 is the chief (one replica), pool 1 the other replicas of the same container;
  pools 2 and 3 (parameter or reduction servers, evaluators) do not run the step.
- AzureML: ``AZUREML_NODE_COUNT`` for the nodes; the node's index from the PyTorch
  distribution's ``NODE_RANK``, else ``AZ_BATCHAI_TASK_INDEX``, else Open MPI's ranks
  (``OMPI_COMM_WORLD_RANK`` // ``OMPI_COMM_WORLD_LOCAL_SIZE``: mpirun places a node's
  processes together); the first node's address from ``AZ_BATCH_MASTER_NODE``
  (``addr:port``) or ``AZ_BATCHAI_MPI_MASTER_NODE``.  AzureML lists no host names, so
  the hosts are named ``node-0``, ``node-1``... (``master_addr`` is the real address).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import attrs

__all__ = ["Cluster", "azureml_cluster", "sagemaker_cluster", "vertex_cluster"]

# The worker pools whose replicas run the job's container: the chief and the workers.
_VERTEX_STEP_POOLS = ("workerpool0", "workerpool1")
# Any of these says the container runs on AzureML (Batch AI underneath).
_AZUREML_MARKERS = (
    "AZUREML_NODE_COUNT",
    "AZ_BATCHAI_TASK_INDEX",
    "AZ_BATCH_MASTER_NODE",
    "AZ_BATCHAI_MPI_MASTER_NODE",
)


@attrs.frozen
class Cluster:
    """The hosts of a job as its platform describes them.

    :param master_addr: the first host's address when the platform gives it apart from
        the host names (AzureML); else None and the first host's name is used.
    :param master_port: the rendezvous port the platform gives, if any.
    """

    hosts: tuple[str, ...]
    current_host: str
    master_addr: str | None = None
    master_port: int | None = None


def sagemaker_cluster(environ: Mapping[str, str], resource_config: Path | None) -> Cluster | None:
    """SageMaker's variables or, given its path, its resource file."""
    if environ.get("SM_HOSTS") and environ.get("SM_CURRENT_HOST"):
        hosts = json.loads(environ["SM_HOSTS"])
        return Cluster(tuple(str(host) for host in hosts), environ["SM_CURRENT_HOST"])
    if resource_config is None:
        return None
    try:
        config = json.loads(resource_config.read_text())
    except (OSError, ValueError):
        return None
    return Cluster(tuple(str(host) for host in config["hosts"]), str(config["current_host"]))


def _host(address: str) -> str:
    """``host`` of ``host:port`` (Vertex AI's pool entries carry the TensorFlow port)."""
    host, colon, port = address.rpartition(":")
    return host if colon and port.isdigit() else address


def vertex_cluster(environ: Mapping[str, str]) -> Cluster | None:
    """Vertex AI's ``CLUSTER_SPEC``."""
    text = environ.get("CLUSTER_SPEC")
    if not text:
        return None
    try:
        spec = json.loads(text)
        pools = spec["cluster"]
        pool, index = str(spec["task"]["type"]), int(spec["task"]["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"CLUSTER_SPEC is not Vertex AI's cluster description ({error!r}): expected "
            'JSON with "cluster" and "task": {"type", "index"}'
        ) from None
    if pool not in _VERTEX_STEP_POOLS:
        raise ValueError(
            f"CLUSTER_SPEC puts this replica in {pool}, which does not run the step: only "
            f"{' and '.join(_VERTEX_STEP_POOLS)} (the chief and the workers) do"
        )
    addresses = [str(a) for name in _VERTEX_STEP_POOLS for a in pools.get(name) or ()]
    offset = 0 if pool == _VERTEX_STEP_POOLS[0] else len(pools.get(_VERTEX_STEP_POOLS[0]) or ())
    if not 0 <= index < len(pools.get(pool) or ()):
        raise ValueError(f"CLUSTER_SPEC's task {pool}[{index}] is not among its {pool} replicas")
    hosts = tuple(_host(address) for address in addresses)
    return Cluster(hosts, hosts[offset + index])


def _int(environ: Mapping[str, str], name: str) -> int | None:
    value = environ.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a whole number") from None


def _azureml_node_rank(environ: Mapping[str, str]) -> int | None:
    for name in ("NODE_RANK", "AZ_BATCHAI_TASK_INDEX"):
        rank = _int(environ, name)
        if rank is not None:
            return rank
    mpi_rank = _int(environ, "OMPI_COMM_WORLD_RANK")
    if mpi_rank is None:
        return None
    return mpi_rank // (_int(environ, "OMPI_COMM_WORLD_LOCAL_SIZE") or 1)


def azureml_cluster(environ: Mapping[str, str]) -> Cluster | None:
    """AzureML's variables (command jobs, with or without a distribution)."""
    if not any(environ.get(name) for name in _AZUREML_MARKERS):
        return None
    count = _int(environ, "AZUREML_NODE_COUNT") or 1
    node_rank = _azureml_node_rank(environ)
    if node_rank is None:
        if count > 1:
            raise ValueError(
                f"AZUREML_NODE_COUNT={count} but no variable gives this node's index "
                "(NODE_RANK, AZ_BATCHAI_TASK_INDEX or OMPI_COMM_WORLD_RANK)"
            )
        node_rank = 0
    hosts = tuple(f"node-{index}" for index in range(count))
    master_addr: str | None = None
    master_port: int | None = None
    if environ.get("AZ_BATCH_MASTER_NODE"):
        master_addr, colon, port = environ["AZ_BATCH_MASTER_NODE"].rpartition(":")
        if colon and port.isdigit():
            master_port = int(port)
        else:
            master_addr = environ["AZ_BATCH_MASTER_NODE"]
    elif environ.get("AZ_BATCHAI_MPI_MASTER_NODE"):
        master_addr = environ["AZ_BATCHAI_MPI_MASTER_NODE"]
    current = f"node-{node_rank}"  # out of range: current_job says it is not a host
    return Cluster(hosts, current, master_addr, master_port)
