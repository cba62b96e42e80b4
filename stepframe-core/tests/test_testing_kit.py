"""The conformance kit, `stepframe.testing`: the core's own backends pass its suites, and
backends that get one thing wrong fail exactly the tests about that thing.

The built-in ``local`` and ``inprocess`` operators and the local artifact store run the
suites directly, as any plugin's tests would.  The reference and broken backends of
kit_backends.py run in inner pytest sessions (pytester), so that a suite failing there
is an outcome to check rather than a failure of this run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stepframe.testing import ArtifactStoreSuite, StepOperatorSuite

pytest_plugins = ["pytester"]

BACKENDS = Path(__file__).with_name("kit_backends.py")

# ---- the core's own backends -------------------------------------------------------------


class TestLocalOperator(StepOperatorSuite):
    flavor = "local"
    plugin_names = ()
    supports_find_job = True
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


# ---- running suites in an inner session --------------------------------------------------

HEADER = """
import pytest

import kit_backends as kb
from stepframe import Component, ComponentKind
from stepframe import SecretRef
from stepframe.testing import (
    ArtifactStoreSuite,
    ConnectorSuite,
    ImageBuilderSuite,
    PolicySuite,
    StepOperatorSuite,
)
"""

OPERATOR = """
class TestOperator(StepOperatorSuite):
    flavor = kb.{backend}.flavor
    plugin_names = ()
    extra_plugins = (kb.{backend}(),)
    max_job_name_length = 40
    sleep_seconds = 2.5  # it stops at once when it works; keep the inner runs short
    job_timeout = 30.0  # a backend that never ends a job fails within it
    cancel_timeout = 20.0
    supports_find_job = getattr(kb.{backend}, "supports_find_job", False)
"""

STORE = """
class TestStore(ArtifactStoreSuite):
    scheme = kb.SCHEME
    plugin_names = ()
    extra_plugins = (kb.{backend}(),)
    large_file_bytes = 24 << 20
    max_stream_memory_bytes = 8 << 20

    def store_uri(self, tmp_path):
        return f"kitdir://{{tmp_path}}/store"

    def corrupt(self, store, uri):
        kb.corrupt_kitdir(uri)
"""

BUILDER = """
class TestBuilder(ImageBuilderSuite):
    flavor = kb.{backend}.flavor
    plugin_names = ()
    extra_plugins = (kb.{backend}(),)

    def count_builds(self, plugins, builder):
        return self.extra_plugins[0].builds
"""

CONNECTOR = """
class TestConnector(ConnectorSuite):
    flavor = kb.{backend}.flavor
    plugin_names = ()
    extra_plugins = (kb.{backend}(),)
    resource_kinds = ("generic", "object_store")
    supports_refresh = True

    @pytest.fixture(autouse=True)
    def token(self, monkeypatch):
        monkeypatch.setenv("KIT_TOKEN", "kit-secret-token-value")

    def make_connector(self, plugins):
        config = kb.TokenConfig(token=SecretRef("env:KIT_TOKEN"))
        return Component(ComponentKind.CONNECTOR, "vault", self.flavor, config=config)

    def secret_values(self):
        return ("kit-secret-token-value",)
"""

POLICY = """
class TestPolicy(PolicySuite):
    extra_plugins = (("kit-policy", kb.{backend}()),)

    def refused_settings(self):
        return {{"instance_type": "huge"}}

    def allowed_settings(self):
        return {{"instance_type": "small"}}
"""

TEMPLATES = {
    "operator": OPERATOR,
    "store": STORE,
    "builder": BUILDER,
    "connector": CONNECTOR,
    "policy": POLICY,
}


def run_inner(pytester: pytest.Pytester, source: str, *args: str) -> dict[str, str]:
    """Run ``source`` as a test file in an inner session; each test's outcome by name."""
    pytester.syspathinsert()
    pytester.makepyfile(kit_backends=BACKENDS.read_text())
    pytester.makepyfile(test_inner=HEADER + textwrap.dedent(source))
    recorded = pytester.inline_run("-p", "no:cacheprovider", *args)
    assert not recorded.getfailedcollections(), recorded.getfailedcollections()
    outcomes: dict[str, str] = {}
    for report in recorded.getreports("pytest_runtest_logreport"):
        name = report.nodeid.rsplit("::", 1)[-1]
        if report.failed:
            outcomes[name] = f"failed in {report.when}" if report.when != "call" else "failed"
        elif report.skipped:
            outcomes[name] = "skipped"
        elif report.when == "call":
            outcomes.setdefault(name, "passed")
    return outcomes


def failed(outcomes: dict[str, str]) -> set[str]:
    return {name for name, outcome in outcomes.items() if outcome.startswith("failed")}


def test_reference_backends_pass_every_suite(pytester: pytest.Pytester) -> None:
    """Third-party-style backends that do everything right pass: the suites are fair."""
    source = "".join(
        TEMPLATES[kind].format(backend=backend).replace("class Test", f"class Test{backend}")
        for kind, backend in [
            ("operator", "DetachedOperator"),
            ("store", "DirStorePlugin"),
            ("builder", "HashingBuilder"),
            ("connector", "TokenConnector"),
            ("policy", "AllowListPolicy"),
        ]
    )
    outcomes = run_inner(pytester, source)
    assert failed(outcomes) == set(), outcomes
    skipped = {name for name, outcome in outcomes.items() if outcome == "skipped"}
    assert skipped <= {
        "test_round_trip_of_each_builtin_materializer[numpy-array]",
        "test_round_trip_of_each_builtin_materializer[numpy-scalar]",
    }, skipped
    assert len(outcomes) >= 40, outcomes


def test_an_operator_whose_jobs_die_with_the_client_passes_the_rest(
    pytester: pytest.Pytester,
) -> None:
    """jobs_outlive_client=False: the cross-process tests are skipped, saying why."""
    outcomes = run_inner(pytester, OPERATOR.format(backend="SubprocessOperator"))
    assert failed(outcomes) == set(), outcomes
    skipped = {name for name, outcome in outcomes.items() if outcome == "skipped"}
    assert skipped == {
        "test_a_job_is_followed_from_another_process_with_its_handle_and_cursor",
        "test_a_job_is_cancelled_from_another_process_with_its_handle",
    }, outcomes


# (kind, backend, -k selection or None for the whole suite, the tests that must fail)
BROKEN = [
    pytest.param(
        "operator",
        "LosesOutputs",
        "not cancel",
        {
            "test_submit_poll_and_fetch_outputs",
            "test_the_handle_finds_the_job_again_after_a_json_round_trip",
            "test_a_failing_step_returns_the_remote_error_with_its_traceback",
            "test_a_pipeline_step_runs_on_the_operator",
            "test_a_job_that_ended_before_its_first_poll_is_followed_to_its_end",
        },
        id="operator-loses-outputs",
    ),
    pytest.param(
        "operator",
        "IgnoresCancel",
        "cancel_stops or submit_poll or from_outside",
        {
            "test_cancel_stops_a_running_job",
            "test_a_pipeline_ends_when_its_job_is_cancelled_from_outside",
        },
        id="operator-ignores-cancel",
    ),
    pytest.param(
        "operator",
        "DropsPartialLine",
        "without_a_newline or log_lines",
        {"test_the_last_log_line_arrives_without_a_newline"},
        id="operator-drops-the-last-partial-line",
    ),
    pytest.param(
        "operator",
        "WaitsForRunning",
        "first_poll or log_lines",
        {"test_a_job_that_ended_before_its_first_poll_is_followed_to_its_end"},
        id="operator-needs-to-see-running",
    ),
    pytest.param(
        "operator",
        "ClaimsToOutliveTheClient",
        "another_process or submit_poll",
        {
            "test_a_job_is_followed_from_another_process_with_its_handle_and_cursor",
            "test_a_job_is_cancelled_from_another_process_with_its_handle",
        },
        id="operator-handle-works-in-one-process-only",
    ),
    pytest.param(
        "operator",
        "ProcessLocalCursor",
        "another_process or log_lines",
        {"test_a_job_is_followed_from_another_process_with_its_handle_and_cursor"},
        id="operator-cursor-works-in-one-process-only",
    ),
    pytest.param(
        "operator",
        "FindsAnyJob",
        "find_job or submit_poll",
        {"test_find_job_finds_the_submitted_job_and_nothing_else"},
        id="operator-finds-jobs-that-do-not-exist",
    ),
    pytest.param(
        "operator",
        "RepeatsLogs",
        "log_lines or submit_poll",
        {"test_log_lines_arrive_in_order_once_each"},
        id="operator-repeats-logs",
    ),
    pytest.param(
        "operator",
        "TruncatesNames",
        "job_names or submit_poll",
        {"test_job_names_are_unique_per_run_step_and_attempt"},
        id="operator-truncates-job-names",
    ),
    pytest.param(
        "operator",
        "TupleInHandle",
        "json_round_trip or submit_poll",
        {"test_the_handle_finds_the_job_again_after_a_json_round_trip"},
        id="operator-handle-not-json",
    ),
    pytest.param(
        "policy",
        "SubmitTimePolicy",
        None,
        {"test_a_refused_step_stops_the_run_in_the_pre_flight"},
        id="policy-refuses-only-at-submit",
    ),
    pytest.param(
        "policy",
        "PolicyWithFlavor",
        None,
        {
            "test_a_refused_step_stops_the_run_in_the_pre_flight",
            "test_the_policy_is_asked_about_every_step",
        },
        id="policy-with-a-flavor-misses-steps",
    ),
    pytest.param(
        "policy",
        "LogEatingPolicy",
        None,
        {"test_steps_on_every_operator_still_run"},
        id="policy-breaks-other-plugins-logs",
    ),
    pytest.param(
        "store",
        "UndeclaredSchemePlugin",
        "scheme or write_read",
        {"test_the_flavor_declares_its_uri_scheme"},
        id="store-scheme-not-declared",
    ),
    pytest.param(
        "store",
        "CachingStorePlugin",
        None,
        {"test_corruption_at_rest_is_detected", "test_a_large_file_streams_with_bounded_memory"},
        id="store-hides-corruption",
    ),
    pytest.param(
        "store",
        "NaiveStorePlugin",
        None,
        {"test_objects_are_written_once", "test_a_failed_write_leaves_nothing_behind"},
        id="store-not-write-once",
    ),
    pytest.param(
        "builder",
        "TimestampBuilder",
        None,
        {"test_rebuilding_an_unchanged_project_is_a_no_op"},
        id="builder-rebuilds-every-time",
    ),
    pytest.param(
        "builder",
        "CodeBlindBuilder",
        None,
        {"test_a_code_change_gives_a_new_image"},
        id="builder-ignores-code",
    ),
    pytest.param(
        "builder",
        "TagBuilder",
        None,
        {
            "test_a_build_returns_the_image_by_digest",
            "test_a_code_change_gives_a_new_image",
            "test_a_requirements_change_gives_a_new_image",
        },
        id="builder-moving-tag",
    ),
    pytest.param(
        "connector",
        "LeakyConnector",
        None,
        {"test_secret_values_never_show_in_repr", "test_credentials_refresh_before_they_expire"},
        id="connector-leaks-secrets",
    ),
    pytest.param(
        "connector",
        "StaleConnector",
        None,
        {"test_credentials_refresh_before_they_expire"},
        id="connector-never-refreshes",
    ),
]


@pytest.mark.parametrize(("kind", "backend", "selection", "must_fail"), BROKEN)
def test_a_broken_backend_fails_the_suite(
    pytester: pytest.Pytester, kind: str, backend: str, selection: str | None, must_fail: set[str]
) -> None:
    args = ("-k", selection) if selection else ()
    outcomes = run_inner(pytester, TEMPLATES[kind].format(backend=backend), *args)
    assert failed(outcomes) == must_fail, outcomes
    assert any(outcome == "passed" for outcome in outcomes.values()), (
        f"nothing passed, so the failures prove little: {outcomes}"
    )


def test_a_first_edition_operator_without_flavor_checks_is_harmless(
    pytester: pytest.Pytester,
) -> None:
    """It would take over every flavor's steps and jobs if asked; the core only asks it
    about its own (hook contract, second edition), so it passes."""
    outcomes = run_inner(
        pytester, OPERATOR.format(backend="AnswersForEveryone"), "-k", "own_flavor or submit_poll"
    )
    assert set(outcomes.values()) == {"passed"} and len(outcomes) == 2, outcomes


def test_a_truncating_store_fails_every_test_that_reads_back(pytester: pytest.Pytester) -> None:
    outcomes = run_inner(pytester, STORE.format(backend="TruncatingStorePlugin"))
    failing = failed(outcomes)
    # Whatever is smaller than its 64 KiB blocks is lost whole; everything else loses its end.
    assert {
        "test_write_read_and_exists",
        "test_an_object_uri_opens_its_store",
        "test_a_failed_write_leaves_nothing_behind",
        "test_a_large_file_streams_with_bounded_memory",
    } <= failing, outcomes
    round_trips = {name for name in outcomes if name.startswith("test_round_trip")}
    assert round_trips and round_trips <= failing | {
        name for name, outcome in outcomes.items() if outcome == "skipped"
    }, outcomes
    # What it gets right still passes: the suite does not just fail everything.
    assert outcomes["test_the_store_answers_for_its_scheme_only"] == "passed"
    assert outcomes["test_a_missing_object_is_not_found"] == "passed"


def test_a_suite_without_a_flavor_says_so(pytester: pytest.Pytester) -> None:
    outcomes = run_inner(
        pytester,
        """
        class TestNothing(StepOperatorSuite):
            plugin_names = ()
        """,
        "-k",
        "registered",
    )
    assert outcomes == {"test_the_flavor_is_registered_as_a_step_operator": "failed in setup"}


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
