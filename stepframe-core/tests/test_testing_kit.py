"""The conformance kit, `stepframe.testing`: the core's own backends pass its suites, and
its fixtures work the way the docs say.

The built-in ``local`` and ``inprocess`` operators and the local artifact store run the
suites directly, as any plugin's tests would.  That the suites pass fair backends and
catch broken ones is tested in kit/, over the backends of kit/kit_backends.py (a folder
of its own, so that its slow inner sessions spread over the test workers).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from stepframe.testing import ArtifactStoreSuite, StepOperatorSuite

pytest_plugins = ["pytester"]

# ---- the core's own backends -------------------------------------------------------------


class TestLocalOperator(StepOperatorSuite):
    flavor = "local"
    plugin_names = ()
    supports_find_job = True  # by the job's record next to its log


class TestInprocessOperator(StepOperatorSuite):
    flavor = "inprocess"
    plugin_names = ()
    # A thread cannot be stopped: cancelling only stops waiting for it.
    supports_cancel = False
    supports_find_job = True  # in the process that started it


class TestLocalArtifactStore(ArtifactStoreSuite):
    scheme = "file"
    plugin_names = ()


# ---- the fixtures, used the way the docs say ---------------------------------------------

FIXTURE_TESTS = """
import os

import stepframe
from stepframe import hookimpl
from stepframe._plugins.manager import get_plugins

CORE = {"inprocess", "local", "local-artifact-store"}


class Tagger:
    def __init__(self):
        self.launches = []

    @hookimpl(wrapper=True)
    def submit_step(self, launch, operator, credentials):
        self.launches.append(launch)
        handle = yield
        return handle


def test_an_isolated_manager_ignores_the_users_lists(stepframe_plugins, monkeypatch):
    monkeypatch.setenv("STEPFRAME_DISABLE_PLUGINS", "local")
    monkeypatch.setenv("STEPFRAME_LOAD_PLUGINS", "")
    assert set(stepframe_plugins().infos) == CORE
    plugins = stepframe_plugins(("tagger", Tagger()))
    assert set(plugins.infos) == CORE | {"tagger"}
    assert plugins.infos["tagger"].hooks == ("submit_step",)


def test_a_plugin_registered_for_one_test(stepframe_plugin, stepframe_project, small_pipeline):
    tagger = Tagger()
    plugins = stepframe_plugin(tagger, "tagger")
    assert get_plugins() is plugins
    small = small_pipeline(operator="local", count=7)
    result = stepframe_project.run(small.pipeline)
    assert result.output(small.step) == small.expected == 21
    assert [launch.step for launch in tagger.launches] == ["numbers", "total"]
    assert "total | summing 7 values" in stepframe_project.output
    (job,) = [job for job in stepframe_project.jobs(result.run_id) if job["step"] == "total"]
    assert (job["flavor"], job["state"]) == ("local", "succeeded")


def test_the_plugin_is_gone_in_the_next_test():
    assert "tagger" not in get_plugins().infos


def test_the_project_is_the_working_directory(stepframe_project):
    assert os.getcwd() == str(stepframe_project.root)
    store = stepframe_project.store()
    assert store.root_uri == stepframe_project.artifact_store_uri
    assert (stepframe_project.artifacts_dir / ".stepframe-artifact-store").is_file()


def test_a_failing_pipeline(stepframe_project):
    pipe = stepframe_project.load('''
from stepframe import pipeline, step

@step(operator="local")
def broken() -> int:
    raise KeyError("nope")

@pipeline
def failing():
    broken()
''')
    try:
        stepframe_project.run(pipe)
    except stepframe.RunFailed as error:
        assert "KeyError" in str(error.failures["broken"])
    else:
        raise AssertionError("the run did not fail")
"""


def test_the_fixtures_as_a_pytest_plugin(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["stepframe.testing"]\n')
    pytester.makepyfile(test_fixtures=FIXTURE_TESTS)
    result = pytester.inline_run("-p", "no:cacheprovider")
    result.assertoutcome(passed=5)


def test_importing_the_kit_is_light_and_registers_nothing() -> None:
    """Only pytest and the core are imported, and no pytest11 entry point auto-loads it."""
    code = textwrap.dedent(
        """
        import json, sys
        from importlib import metadata
        import stepframe.testing
        top = sorted({name.partition(".")[0] for name in sys.modules})
        pytest11 = [ep.value for ep in metadata.entry_points(group="pytest11")]
        print(json.dumps({"modules": top, "pytest11": pytest11}))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = {"numpy", "boto3", "botocore", "docker", "sagemaker"} & set(found["modules"])
    assert not heavy, heavy
    assert not [value for value in found["pytest11"] if value.startswith("stepframe")]
