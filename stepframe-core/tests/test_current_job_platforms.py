"""`stepframe.current_job()` on Vertex AI and AzureML, and which platform's word wins.

The mappings are checked variable by variable against what each platform documents:
Vertex AI's ``CLUSTER_SPEC`` (worker pool 0 the chief, pool 1 the workers, ``task`` this
replica) and AzureML's node variables (``AZUREML_NODE_COUNT``, the PyTorch distribution's
``NODE_RANK``/``RANK``/``WORLD_SIZE``, Open MPI's ``OMPI_COMM_WORLD_*``,
``AZ_BATCH_MASTER_NODE``).  Then several replicas are played by several entrypoint
processes with those variables: every one runs the step, only rank 0 writes.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from stepframe._artifacts.io import load_artifact
from stepframe._artifacts.local import LocalArtifactStore
from stepframe._artifacts.materializers import MaterializerRegistry
from stepframe._current_job import current_job
from stepframe._manifests import (
    FunctionRef,
    LaunchManifest,
    OutputTarget,
    ResultManifest,
    read_manifest,
    write_manifest,
)

NO_FILE = Path("/nonexistent/resourceconfig.json")


def cluster_spec(pool: str, index: int, workers: int = 2) -> str:
    """The CLUSTER_SPEC Vertex AI gives a replica of a job with one chief and workers."""
    return json.dumps(
        {
            "cluster": {
                "workerpool0": ["cmle-training-workerpool0-1a2b-0:2222"],
                "workerpool1": [f"cmle-training-workerpool1-1a2b-{n}:2222" for n in range(workers)],
            },
            "environment": "cloud",
            "task": {"type": pool, "index": index},
            "job": '{"python_module":"","package_uris":[],"job_args":[]}',
        }
    )


def placement(env: Mapping[str, str], resource_config: Path = NO_FILE) -> tuple[Any, ...]:
    job = current_job(env, resource_config=resource_config)
    return (job.current_host, job.host_rank, job.rank, job.world_size, job.is_main)


# Vertex AI


def test_vertex_chief_and_workers_from_cluster_spec() -> None:
    chief = current_job({"CLUSTER_SPEC": cluster_spec("workerpool0", 0)}, resource_config=NO_FILE)
    assert chief.hosts == (
        "cmle-training-workerpool0-1a2b-0",
        "cmle-training-workerpool1-1a2b-0",
        "cmle-training-workerpool1-1a2b-1",
    )
    assert (chief.rank, chief.world_size, chief.is_main) == (0, 3, True)
    # The pools' port is TensorFlow's gRPC one, not a rendezvous: torch's default stays.
    assert (chief.master_addr, chief.master_port) == ("cmle-training-workerpool0-1a2b-0", 29500)
    worker = {"CLUSTER_SPEC": cluster_spec("workerpool1", 1)}
    assert placement(worker) == ("cmle-training-workerpool1-1a2b-1", 2, 2, 3, False)


def test_a_one_replica_cluster_spec_is_a_one_host_job() -> None:
    # What stepframe-gcp's local mode gives its container, as Vertex AI would.
    spec = {"cluster": {"workerpool0": ["localhost:2222"]}, "environment": "cloud"}
    spec["task"] = {"type": "workerpool0", "index": 0}
    assert placement({"CLUSTER_SPEC": json.dumps(spec)}) == ("localhost", 0, 0, 1, True)


def test_vertex_torchrun_processes_take_their_rank_from_torchrun() -> None:
    env = {
        "CLUSTER_SPEC": cluster_spec("workerpool1", 0),
        "RANK": "5",
        "WORLD_SIZE": "6",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "10.0.0.2",
    }
    job = current_job(env, resource_config=NO_FILE)
    assert (job.host_rank, job.rank, job.world_size, job.local_rank) == (1, 5, 6, 1)
    assert job.master_addr == "10.0.0.2"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{not json", "CLUSTER_SPEC is not Vertex AI's cluster description"),
        (json.dumps({"cluster": {}}), "CLUSTER_SPEC is not Vertex AI's cluster description"),
        (cluster_spec("workerpool2", 0), "workerpool2, which does not run the step"),
        (cluster_spec("workerpool1", 2), "task workerpool1[2] is not among its workerpool1"),
    ],
)
def test_a_cluster_spec_that_cannot_be_read_is_named(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        current_job({"CLUSTER_SPEC": spec}, resource_config=NO_FILE)


# AzureML


def test_azureml_pytorch_distribution_one_process_per_node() -> None:
    env = {
        "AZUREML_NODE_COUNT": "3",
        "NODE_RANK": "2",
        "RANK": "2",
        "WORLD_SIZE": "3",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "10.0.0.4",
        "MASTER_PORT": "6105",
    }
    job = current_job(env, resource_config=NO_FILE)
    assert job.hosts == ("node-0", "node-1", "node-2")
    assert placement(env) == ("node-2", 2, 2, 3, False)
    assert (job.master_addr, job.master_port) == ("10.0.0.4", 6105)


def test_azureml_pytorch_distribution_several_processes_per_node() -> None:
    env = {"AZUREML_NODE_COUNT": "2", "NODE_RANK": "1", "RANK": "4", "WORLD_SIZE": "8"}
    assert placement({**env, "LOCAL_RANK": "0"}) == ("node-1", 1, 4, 8, False)
    assert placement({**env, "NODE_RANK": "0", "RANK": "0"}) == ("node-0", 0, 0, 8, True)


def test_azureml_mpi_distribution_ranks_from_open_mpi() -> None:
    env = {
        "AZUREML_NODE_COUNT": "2",
        "OMPI_COMM_WORLD_RANK": "3",
        "OMPI_COMM_WORLD_SIZE": "4",
        "OMPI_COMM_WORLD_LOCAL_RANK": "1",
        "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
        "AZ_BATCH_MASTER_NODE": "10.0.0.4:6105",
    }
    job = current_job(env, resource_config=NO_FILE)
    assert (job.current_host, job.host_rank, job.rank, job.world_size) == ("node-1", 1, 3, 4)
    assert (job.local_rank, job.master_addr, job.master_port) == (1, "10.0.0.4", 6105)
    assert not job.is_main


def test_azureml_without_a_distribution_reads_the_task_index() -> None:
    env = {"AZUREML_NODE_COUNT": "2", "AZ_BATCHAI_TASK_INDEX": "0"}
    assert placement(env) == ("node-0", 0, 0, 2, True)
    single = {"AZ_BATCHAI_MPI_MASTER_NODE": "10.0.0.9"}
    assert placement(single) == ("node-0", 0, 0, 1, True)
    assert current_job(single, resource_config=NO_FILE).master_addr == "10.0.0.9"


def test_azureml_nodes_without_this_nodes_index_are_refused() -> None:
    # Every node taking itself for rank 0 would write the outputs twice: refuse instead.
    with pytest.raises(ValueError, match="AZUREML_NODE_COUNT=2 but no variable gives"):
        current_job({"AZUREML_NODE_COUNT": "2"}, resource_config=NO_FILE)
    with pytest.raises(ValueError, match="'node-5' is not among the job's hosts"):
        current_job({"AZUREML_NODE_COUNT": "2", "NODE_RANK": "5"}, resource_config=NO_FILE)
    with pytest.raises(ValueError, match="NODE_RANK='one' is not a whole number"):
        current_job({"AZUREML_NODE_COUNT": "2", "NODE_RANK": "one"}, resource_config=NO_FILE)


# Precedence


def test_which_platforms_description_wins(tmp_path: Path) -> None:
    sagemaker = {"SM_HOSTS": '["algo-1", "algo-2"]', "SM_CURRENT_HOST": "algo-2"}
    vertex = {"CLUSTER_SPEC": cluster_spec("workerpool1", 0, workers=1)}
    azureml = {"AZUREML_NODE_COUNT": "4", "NODE_RANK": "3"}
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    # SageMaker's variables, then Vertex AI's, then AzureML's, then SageMaker's file.
    assert placement({**sagemaker, **vertex, **azureml}, config)[0] == "algo-2"
    assert placement({**vertex, **azureml}, config)[0] == "cmle-training-workerpool1-1a2b-0"
    assert placement(azureml, config)[0] == "node-3"
    assert placement({}, config)[0] == "algo-1"
    assert placement({}) == ("localhost", 0, 0, 1, True)
    # A launcher's rank (torchrun) wins over Open MPI's, which wins over the host's.
    mpi = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}
    assert placement({**azureml, **mpi})[2:4] == (1, 2)
    assert placement({**azureml, **mpi, "RANK": "7", "WORLD_SIZE": "8"})[2:4] == (7, 8)


# Across processes: the entrypoint on each replica

STEPS = """
import json, os
import stepframe
from stepframe import step


@step
def where() -> list:
    job = stepframe.current_job()
    with open(os.path.join(os.environ["MARKS"], f"rank-{job.rank}"), "w") as file:
        json.dump([job.current_host, job.rank, job.world_size], file)
    return [job.current_host, job.rank, job.world_size]
"""


@pytest.fixture
def launch(project: Any) -> tuple[LocalArtifactStore, str]:
    module = project.write(STEPS).stem
    store = LocalArtifactStore.at(project.root / ".stepframe" / "artifacts", create=True)
    prefix = ("runs", "r1", "where", "attempt-1")
    manifest = LaunchManifest(
        run_id="r1",
        pipeline="p",
        step="where",
        attempt=1,
        function=FunctionRef(module, "where", f"{module}.py"),
        inputs={},
        outputs=[OutputTarget("output", store.uri_for(*prefix, "outputs", "output"))],
        result_uri=store.uri_for(*prefix, "result.json"),
        artifact_store_uri=store.root_uri,
    )
    uri = store.uri_for(*prefix, "launch.json")
    write_manifest(store, uri, manifest)
    return store, uri


def run_replicas(
    project: Any, subprocess_env: Any, uri: str, marks: Path, replicas: list[dict[str, str]]
) -> list[subprocess.CompletedProcess[str]]:
    """One entrypoint process per replica, all at once, each with its platform variables."""
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "stepframe.entrypoint", uri],
            cwd=project.root,
            env=subprocess_env(STEPFRAME_CODE_ROOT=str(project.root), MARKS=str(marks), **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for env in replicas
    ]
    done = []
    for process in running:
        out, err = process.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return done


def the_output(store: LocalArtifactStore, uri: str, tmp_path: Path) -> Any:
    manifest = read_manifest(store, uri, LaunchManifest)
    result = read_manifest(store, manifest.result_uri, ResultManifest)
    assert result.error is None, result.error
    return load_artifact(
        store, result.outputs["output"], inspect.Parameter.empty, MaterializerRegistry(), tmp_path
    )


@pytest.mark.parametrize(
    "replicas",
    [
        pytest.param(
            [{"CLUSTER_SPEC": cluster_spec("workerpool0", 0)}]
            + [{"CLUSTER_SPEC": cluster_spec("workerpool1", n)} for n in range(2)],
            id="vertex",
        ),
        pytest.param(
            [
                {"AZUREML_NODE_COUNT": "3", "AZ_BATCHAI_TASK_INDEX": str(n)}
                | {"AZ_BATCH_MASTER_NODE": "10.0.0.4:6105"}
                for n in range(3)
            ],
            id="azureml",
        ),
    ],
)
def test_every_replica_runs_the_step_and_only_the_chief_writes(
    project: Any,
    subprocess_env: Any,
    launch: tuple[LocalArtifactStore, str],
    tmp_path: Path,
    replicas: list[dict[str, str]],
) -> None:
    store, uri = launch
    marks = tmp_path / "marks"
    marks.mkdir()
    done = run_replicas(project, subprocess_env, uri, marks, replicas)
    assert [process.returncode for process in done] == [0, 0, 0], done
    assert sorted(path.name for path in marks.iterdir()) == ["rank-0", "rank-1", "rank-2"]
    chief = json.loads((marks / "rank-0").read_text())
    assert the_output(store, uri, tmp_path) == chief  # the chief's return value
    assert "(rank 2 of 3) ran the step; rank 0 on" in done[2].stderr
    assert "ran the step" not in done[0].stderr
