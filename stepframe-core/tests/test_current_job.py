"""`stepframe.current_job()` and the entrypoint on several hosts and processes.

Several hosts are played by several entrypoint processes with SageMaker's variables
(``SM_HOSTS``, ``SM_CURRENT_HOST``).  torch is not installed here, so the torchrun test
puts a stand-in ``torch.distributed.run`` on the path: it starts ``--nproc_per_node``
copies of the command with torchrun's variables (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), which is all the entrypoint relies on.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import stepframe
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

STEPS = """
import json, os
import stepframe
from stepframe import step


@step
def where() -> list:
    job = stepframe.current_job()
    mark = os.path.join(os.environ["MARKS"], f"rank-{job.rank}")
    with open(mark, "w") as file:
        json.dump([job.current_host, job.host_rank, job.rank, job.world_size,
                   job.local_rank, job.master_addr], file)
    return [job.rank, job.world_size]
"""

FAKE_TORCHRUN = '''
"""A stand-in for torch.distributed.run: --nproc_per_node copies, torchrun's variables."""
import os, subprocess, sys

args = sys.argv[1:]
options = {}
while args and args[0].startswith("--"):
    key, _, value = args.pop(0)[2:].partition("=")
    options[key] = value
nnodes, node_rank = int(options["nnodes"]), int(options["node_rank"])
nproc = int(options["nproc_per_node"])
processes = [
    subprocess.Popen(
        [sys.executable, *args],
        env={
            **os.environ,
            "RANK": str(node_rank * nproc + local),
            "WORLD_SIZE": str(nnodes * nproc),
            "LOCAL_RANK": str(local),
            "MASTER_ADDR": options["master_addr"],
            "MASTER_PORT": options["master_port"],
        },
    )
    for local in range(nproc)
]
sys.exit(max(process.wait() for process in processes))
'''


def test_one_host_by_default(tmp_path: Path) -> None:
    job = current_job({}, resource_config=tmp_path / "none.json")
    assert (job.hosts, job.rank, job.world_size, job.is_main) == (("localhost",), 0, 1, True)
    assert stepframe.current_job is current_job


def test_sagemakers_variables_and_resource_file(tmp_path: Path) -> None:
    env = {"SM_HOSTS": '["algo-1", "algo-2", "algo-3"]', "SM_CURRENT_HOST": "algo-2"}
    job = current_job(env)
    assert (job.host_rank, job.rank, job.world_size, job.master_addr) == (1, 1, 3, "algo-1")
    assert not job.is_main and job.num_hosts == 3
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}))
    job = current_job({}, resource_config=config)
    assert (job.current_host, job.rank, job.world_size, job.is_main) == ("algo-1", 0, 2, True)


def test_torchruns_variables_name_the_process() -> None:
    env = {
        "SM_HOSTS": '["algo-1", "algo-2"]',
        "SM_CURRENT_HOST": "algo-2",
        "RANK": "3",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "1",
        "MASTER_PORT": "7777",
    }
    job = current_job(env)
    assert (job.host_rank, job.rank, job.world_size, job.local_rank) == (1, 3, 4, 1)
    assert (job.master_addr, job.master_port) == ("algo-1", 7777)


def test_a_host_not_among_the_hosts_is_an_error() -> None:
    with pytest.raises(ValueError, match="not among the job's hosts"):
        current_job({"SM_HOSTS": '["algo-1"]', "SM_CURRENT_HOST": "algo-9"})


@pytest.fixture
def launch(project: Any) -> Any:
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


def _hosts(
    project: Any, subprocess_env: Any, uri: str, marks: Path, args: list[str], **extra: str
) -> dict[str, subprocess.CompletedProcess[str]]:
    """One entrypoint process per host, all at once."""
    hosts = ["algo-1", "algo-2"]
    running = {
        host: subprocess.Popen(
            [sys.executable, "-m", "stepframe.entrypoint", *args, uri],
            cwd=project.root,
            env=subprocess_env(
                STEPFRAME_CODE_ROOT=str(project.root),
                SM_HOSTS=json.dumps(hosts),
                SM_CURRENT_HOST=host,
                MARKS=str(marks),
                **extra,
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for host in hosts
    }
    done = {}
    for host, process in running.items():
        out, err = process.communicate(timeout=60)
        done[host] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    return done


def _result(store: Any, uri: str) -> ResultManifest:
    manifest = read_manifest(store, uri, LaunchManifest)
    return read_manifest(store, manifest.result_uri, ResultManifest)


def test_every_host_runs_the_step_and_only_the_first_writes(
    project: Any, subprocess_env: Any, launch: Any, tmp_path: Path
) -> None:
    store, uri = launch
    marks = tmp_path / "marks"
    marks.mkdir()
    done = _hosts(project, subprocess_env, uri, marks, [])
    assert {h: p.returncode for h, p in done.items()} == {"algo-1": 0, "algo-2": 0}, done
    assert "algo-2 (rank 1 of 2) ran the step; rank 0 on algo-1 writes" in done["algo-2"].stderr
    assert sorted(path.name for path in marks.iterdir()) == ["rank-0", "rank-1"]
    assert json.loads((marks / "rank-1").read_text()) == ["algo-2", 1, 1, 2, 0, "algo-1"]
    result = _result(store, uri)
    value = load_artifact(
        store, result.outputs["output"], inspect.Parameter.empty, MaterializerRegistry(), tmp_path
    )
    assert value == [0, 2]  # rank 0's return value


def test_torchrun_spreads_ranks_over_hosts_and_processes(
    project: Any, subprocess_env: Any, launch: Any, tmp_path: Path
) -> None:
    store, uri = launch
    fake = tmp_path / "fake-torch"
    (fake / "torch" / "distributed").mkdir(parents=True)
    (fake / "torch" / "__init__.py").write_text("")
    (fake / "torch" / "distributed" / "__init__.py").write_text("")
    (fake / "torch" / "distributed" / "run.py").write_text(FAKE_TORCHRUN)
    marks = tmp_path / "marks"
    marks.mkdir()
    pythonpath = f"{fake}:{subprocess_env().get('PYTHONPATH', '')}".rstrip(":")
    args = ["--torchrun", "--processes-per-host=2"]
    done = _hosts(project, subprocess_env, uri, marks, args, PYTHONPATH=pythonpath)
    assert {h: p.returncode for h, p in done.items()} == {"algo-1": 0, "algo-2": 0}, done
    assert "--nnodes=2 --node_rank=1 --nproc_per_node=2 --master_addr=algo-1" in (
        done["algo-2"].stderr
    )
    ranks = {int(path.name.split("-")[1]): json.loads(path.read_text()) for path in marks.iterdir()}
    assert sorted(ranks) == [0, 1, 2, 3]
    assert [ranks[r][0] for r in range(4)] == ["algo-1", "algo-1", "algo-2", "algo-2"]
    assert {tuple(ranks[r][3:]) for r in range(4)} >= {(4, 0, "algo-1"), (4, 1, "algo-1")}
    result = _result(store, uri)
    assert result.error is None and set(result.outputs) == {"output"}
