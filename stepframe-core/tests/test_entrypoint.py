"""``python -m stepframe.entrypoint``, the only program a job runs: launch manifest in,
outputs and a result manifest out, through the artifact store alone."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest

from stepframe._artifacts.io import load_artifact, save_artifact
from stepframe._artifacts.local import LocalArtifactStore
from stepframe._artifacts.materializers import MaterializerRegistry
from stepframe._manifests import (
    MANIFEST_VERSION,
    FunctionRef,
    LaunchManifest,
    OutputTarget,
    ResultManifest,
    read_manifest,
    write_manifest,
)
from stepframe._types import ArtifactRef

EMPTY = inspect.Parameter.empty

STEPS = """
from stepframe import step


@step(outputs=["total", "label"])
def summarise(values: tuple[int, ...], label: str) -> tuple[int, str]:
    print(f"summing {len(values)} values")
    return sum(values), f"{label}:{type(values).__name__}"


def helper():
    raise LookupError("no such thing")


@step
def fails(values: list[int]) -> int:
    helper()
    return 0
"""


@pytest.fixture
def job(project, subprocess_env):
    """Write a launch manifest for a step of a module in the project; run the entrypoint."""
    module = project.write(STEPS).stem
    store = LocalArtifactStore.at(project.root / ".stepframe" / "artifacts", create=True)
    registry = MaterializerRegistry()

    def launch(step: str, outputs: list[str], **inputs: object) -> str:
        prefix = ("runs", "r1", step, "attempt-1")
        refs = {
            name: save_artifact(
                store, store.uri_for(*prefix, "inputs", name), value, EMPTY, registry
            )
            for name, value in inputs.items()
        }
        manifest = LaunchManifest(
            run_id="r1",
            pipeline="p",
            step=step,
            attempt=1,
            function=FunctionRef(module, step, f"{module}.py"),
            inputs=refs,
            outputs=[
                OutputTarget(name, store.uri_for(*prefix, "outputs", name)) for name in outputs
            ],
            result_uri=store.uri_for(*prefix, "result.json"),
            artifact_store_uri=store.root_uri,
        )
        uri = store.uri_for(*prefix, "launch.json")
        write_manifest(store, uri, manifest)
        return uri

    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "stepframe.entrypoint", *args],
            cwd=project.root,
            env=subprocess_env(STEPFRAME_CODE_ROOT=str(project.root), **env),
            capture_output=True,
            text=True,
            timeout=60,
        )

    def result(launch_uri: str) -> ResultManifest:
        manifest = read_manifest(store, launch_uri, LaunchManifest)
        return read_manifest(store, manifest.result_uri, ResultManifest)

    def load(ref: ArtifactRef) -> object:
        return load_artifact(store, ref, EMPTY, registry, project.root / "scratch")

    return SimpleNamespace(launch=launch, run=run, result=result, load=load, store=store)


def test_a_job_runs_its_step_from_the_launch_manifest(job) -> None:
    uri = job.launch("summarise", ["total", "label"], values=[1, 2, 3], label="sum")
    process = job.run(uri)
    assert process.returncode == 0, process.stderr
    assert process.stdout == "summing 3 values\n"
    manifest = job.result(uri)
    assert manifest.error is None and manifest.version == MANIFEST_VERSION
    assert manifest.started_at <= manifest.ended_at
    assert set(manifest.outputs) == {"total", "label"}
    assert job.load(manifest.outputs["total"]) == 6
    assert job.load(manifest.outputs["label"]) == "sum:tuple"  # the hint turned JSON's list back
    assert len(manifest.outputs["total"].sha256) == 64


def test_the_manifest_uri_may_come_from_the_environment(job) -> None:
    uri = job.launch("summarise", ["total", "label"], values=[4], label="env")
    assert job.run(STEPFRAME_LAUNCH_MANIFEST=uri).returncode == 0
    assert job.load(job.result(uri).outputs["label"]) == "env:tuple"


def test_a_failing_step_writes_its_error_and_exits_1(job) -> None:
    uri = job.launch("fails", ["output"], values=[1])
    process = job.run(uri)
    assert process.returncode == 1
    error = job.result(uri).error
    assert error is not None
    assert (error.type, error.message) == ("LookupError", "no such thing")
    assert error.traceback.startswith("Traceback (most recent call last):")
    assert "in fails" in error.traceback and "in helper" in error.traceback
    assert "stepframe" not in error.traceback.split("\n", 2)[1]  # starts at the user's frame
    assert process.stderr == error.traceback  # the job's log shows it too


def test_an_input_type_mismatch_is_reported_without_a_stepframe_traceback(job) -> None:
    uri = job.launch("summarise", ["total", "label"], values=["a", "b"], label="x")
    process = job.run(uri)
    assert process.returncode == 1
    error = job.result(uri).error
    assert error is not None and error.type == "stepframe.exceptions.InputTypeError"
    assert "step 'summarise' input 'values': expected int, got str at [0]" in error.message
    assert error.traceback == ""
    assert process.stderr.startswith("stepframe.exceptions.InputTypeError: step 'summarise'")


def test_a_manifest_of_another_version_is_refused(job) -> None:
    uri = job.launch("summarise", ["total", "label"], values=[1], label="v")
    data = json.loads(job.store.path_for(uri).read_text())
    data["version"] = MANIFEST_VERSION + 1
    newer = job.store.uri_for("runs", "r1", "newer.json")
    with job.store.open_write(newer) as stream:
        stream.write(json.dumps(data).encode())
    process = job.run(newer)
    assert process.returncode == 2
    assert f"has version {MANIFEST_VERSION + 1}" in process.stderr
    assert "run the same stepframe version on the client and in the job" in process.stderr
    assert "Traceback" not in process.stderr


def test_a_missing_manifest_or_no_manifest_is_a_clear_error(job) -> None:
    process = job.run(job.store.uri_for("runs", "r1", "nothing-here.json"))
    assert process.returncode == 2
    assert process.stderr.startswith("stepframe entrypoint: ")
    assert "nothing-here.json" in process.stderr and "Traceback" not in process.stderr

    process = job.run()
    assert process.returncode == 2
    assert "usage: python -m stepframe.entrypoint MANIFEST_URI" in process.stderr


# ---- what a job imports ---------------------------------------------------------------

# The plugin machinery, the pipeline API and the CLI: a job needs none of them to run a
# step on a local store, so it must not pay for importing them.
NOT_FOR_PLAIN_JOBS = (
    "pluggy",
    "importlib.metadata",
    "click",
    "stepframe._plugins.manager",
    "stepframe._pipeline.pipeline",
    "stepframe._orchestrator",
)


def _imported(stderr: str) -> set[str]:
    """Module names from ``python -X importtime`` output."""
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def _run_importtime(project, subprocess_env, uri: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "stepframe.entrypoint", uri],
        cwd=project.root,
        env=subprocess_env(STEPFRAME_CODE_ROOT=str(project.root)),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_importing_the_entrypoint_or_the_package_is_lean(subprocess_env) -> None:
    for module in ("stepframe", "stepframe.entrypoint"):
        script = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
        process = subprocess.run(
            [sys.executable, "-c", script],
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert process.returncode == 0, process.stderr
        loaded = set(json.loads(process.stdout))
        assert not loaded & set(NOT_FOR_PLAIN_JOBS), (
            module,
            sorted(loaded & set(NOT_FOR_PLAIN_JOBS)),
        )


def test_the_public_names_are_there_when_asked_for() -> None:
    """`stepframe` imports its names lazily; each one in __all__ still resolves."""
    import stepframe

    for name in stepframe.__all__:
        assert getattr(stepframe, name) is not None, name
        assert name in dir(stepframe)
    from stepframe import Step, pipeline, step

    assert isinstance(step(lambda: 1), Step) and callable(pipeline)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = stepframe.no_such_name


def test_a_plain_job_loads_no_plugins(job, project, subprocess_env) -> None:
    uri = job.launch("summarise", ["total", "label"], values=[1, 2], label="lean")
    process = _run_importtime(project, subprocess_env, uri)
    assert process.returncode == 0, process.stderr
    assert job.load(job.result(uri).outputs["total"]) == 3
    imported = _imported(process.stderr)
    assert "stepframe.entrypoint" in imported or "stepframe._manifests" in imported
    assert not imported & set(NOT_FOR_PLAIN_JOBS), sorted(imported & set(NOT_FOR_PLAIN_JOBS))


def test_a_job_loads_the_materializer_plugins_its_manifest_names(
    job, project, subprocess_env
) -> None:
    uri = job.launch("summarise", ["total", "label"], values=[5], label="plugins")
    data = json.loads(job.store.path_for(uri).read_text())
    data["materializer_plugins"] = ["not-installed-here"]
    named = job.store.uri_for("runs", "r1", "summarise", "attempt-1", "launch-plugins.json")
    with job.store.open_write(named) as stream:
        stream.write(json.dumps(data).encode())
    process = _run_importtime(project, subprocess_env, named)
    assert process.returncode == 0, process.stderr
    assert "pluggy" in _imported(process.stderr)  # it did load plugins this time
    assert "not-installed-here" in process.stderr and "not installed here" in process.stderr
    assert job.load(job.result(named).outputs["total"]) == 5
