"""The step operator conformance suite."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from stepframe._plugins.manager import Plugins
from stepframe._types import (
    Component,
    ComponentKind,
    Credentials,
    ImageRef,
    JobHandle,
    JobState,
    Launch,
)
from stepframe.testing._fixtures import TempProject, make_plugins
from stepframe.testing._jobs import (
    POLL_CAP_SECONDS,
    STEPS_MODULE,
    OperatorHarness,
    handle_from_json,
    handle_round_trip,
    handle_to_json,
    in_another_process,
    lines_with,
    other_flavor_component,
)

__all__ = ["StepOperatorSuite"]

_PIPELINE = """
import time

from stepframe import pipeline, step


@step
def numbers(count: int) -> list[int]:
    return list(range(count))


@step(operator={operator!r}, settings={settings!r})
def total(values: list[int]) -> int:
    print(f"summing {{len(values)}} values")
    return sum(values)


@step(operator={operator!r}, settings={settings!r})
def fail(total: int) -> int:
    raise RuntimeError(f"kit failure after {{total}}")


@pipeline
def kit_small(count: int = 5) -> None:
    total(numbers(count))


@pipeline
def kit_failing(count: int = 5) -> None:
    fail(total(numbers(count)))


@step(operator={operator!r}, settings={settings!r})
def nap(seconds: float) -> str:
    print("kit nap started", flush=True)
    time.sleep(seconds)
    return "rested"


@pipeline
def kit_sleepy(seconds: float = 4.0) -> None:
    nap(seconds)
"""


class StepOperatorSuite:
    """Conformance tests for a step operator flavor.  Subclass it in a ``Test*`` class.

    Set `flavor`, say which plugins to load (`plugin_names`, `extra_plugins`), and turn
    off the capabilities the backend does not have.  Override the ``make_*`` methods when
    the flavor needs configuration, credentials, an image or another artifact store.
    Every test starts real jobs that run ``python -m stepframe.entrypoint``; jobs a
    test leaves behind are cancelled when it ends.
    """

    #: the operator flavor under test (required).
    flavor: ClassVar[str] = ""
    #: installed entry points to load besides the core's; None loads every installed one.
    plugin_names: ClassVar[tuple[str, ...] | None] = None
    #: plugin objects to register directly: modules, instances or (name, plugin) pairs.
    extra_plugins: ClassVar[tuple[Any, ...]] = ()

    #: cancel_step really stops the job (else cancelling only has to be acknowledged).
    supports_cancel: ClassVar[bool] = True
    #: poll_step returns the job's log lines.
    supports_logs: ClassVar[bool] = True
    #: the operator can run a step of a real pipeline run (needs `stack_config` when the
    #: operator must be registered in stepframe.toml first).
    supports_pipeline_run: ClassVar[bool] = True
    #: a job whose step raised ends FAILED (in-process threads end SUCCEEDED regardless;
    #: the error is in the result manifest either way).
    failed_step_fails_job: ClassVar[bool] = True
    #: ``find_job`` finds a submitted job again from its launch (the reconcile hook);
    #: when False, it must answer None ("cannot tell") for every launch.
    supports_find_job: ClassVar[bool] = False

    #: seconds a job may take from submit to its end.
    job_timeout: ClassVar[float] = 120.0
    #: seconds from cancel_step until the job must be reported ended.
    cancel_timeout: ClassVar[float] = 60.0
    #: how long the step used to test cancel sleeps if nothing stops it.
    sleep_seconds: ClassVar[float] = 4.0
    #: one poll_step call must answer within this many seconds.
    max_poll_seconds: ClassVar[float] = 5.0
    #: the backend's limit on job names, checked on `job_name_of`; None for no limit.
    max_job_name_length: ClassVar[int | None] = None

    # ---- what a flavor overrides ----------------------------------------------------

    def make_plugins(self) -> Plugins:
        """The plugins under test: the core's, `plugin_names` and `extra_plugins`."""
        return make_plugins(*self.extra_plugins, load=self.plugin_names)

    def make_operator(self, plugins: Plugins, tmp_path: Path | None = None) -> Component:
        """The step operator component; by default the flavor with its default config.

        :param tmp_path: the test's own temporary folder (for a component that keeps files:
            a queue folder, a state file).  An override may leave the argument out.
        """
        return default_component(plugins, ComponentKind.STEP_OPERATOR, self.flavor)

    def make_credentials(self, plugins: Plugins, operator: Component) -> Credentials | None:
        """Credentials for submit, poll and cancel (from the operator's connector)."""
        return None

    def step_settings(self) -> Mapping[str, Any]:
        """This flavor's per-step settings for the suite's steps (validated like a run's)."""
        return {}

    def artifact_store_uri(self, project_root: Path) -> str:
        """Where the launches' manifests, inputs and outputs go; the job must reach it."""
        return (project_root / ".stepframe" / "artifacts").as_uri()

    def make_image(self, plugins: Plugins, code_root: Path) -> ImageRef | None:
        """The image the jobs run in, for flavors that need one (build it here)."""
        return None

    def job_name_of(self, handle: JobHandle, launch: Launch) -> str:
        """The name the backend knows the job by; by default ``handle.job_id``."""
        return handle.job_id

    def stack_config(self, tmp_path: Path | None = None) -> str | None:
        """``stepframe.toml`` text whose active stack has the operator, or None to let the
        kit write one from `make_operator`'s component (its name, flavor and config).

        :param tmp_path: the test's own temporary folder.  An override may leave it out.
        """
        return None

    # ---- calling the overridable methods ------------------------------------------

    def _operator(self, plugins: Plugins, tmp_path: Path) -> Component:
        component: Component = _with_tmp_path(self.make_operator, tmp_path, plugins)
        return component

    def _stack_config(self, tmp_path: Path, operator: Component) -> str | None:
        config = _with_tmp_path(self.stack_config, tmp_path)
        if config is not None:
            return str(config)
        if operator.name == operator.flavor:
            return None  # steps find the flavor by its name, with its default config
        return _stack_for(operator)

    # ---- fixtures -------------------------------------------------------------------

    @pytest.fixture
    def suite_plugins(self) -> Plugins:
        assert self.flavor, f"{type(self).__name__} must set `flavor`"
        return self.make_plugins()

    @pytest.fixture
    def operator_harness(
        self, suite_plugins: Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[OperatorHarness]:
        from stepframe._stack import resolve_settings

        code_root = tmp_path / "project"
        code_root.mkdir()
        monkeypatch.chdir(code_root)
        plugins = suite_plugins
        operator = self._operator(plugins, tmp_path)
        settings, merged = resolve_settings(
            plugins.flavors, "kit", operator, ({operator.flavor: dict(self.step_settings())},)
        )
        store = plugins.hooks.open_artifact_store(self.artifact_store_uri(code_root), None)
        harness = OperatorHarness(
            plugins=plugins,
            operator=operator,
            store=store,
            code_root=code_root,
            workdir=code_root / ".stepframe" / "jobs",
            settings=settings,
            merged_settings=merged,
            credentials=self.make_credentials(plugins, operator),
            max_poll_seconds=self.max_poll_seconds,
        )
        harness.image = self.make_image(plugins, code_root)
        yield harness
        problems = harness.cleanup(self.cancel_timeout)
        sys.modules.pop(STEPS_MODULE, None)
        assert not problems, f"jobs left running after the test: {problems}"

    # ---- the tests ------------------------------------------------------------------

    def test_the_flavor_is_registered_as_a_step_operator(self, suite_plugins: Plugins) -> None:
        flavor = suite_plugins.flavors.get(ComponentKind.STEP_OPERATOR, self.flavor)
        assert flavor is not None, (
            f"no plugin registered step operator flavor {self.flavor!r}; registered: "
            f"{[f.name for f, _ in suite_plugins.flavors.of_kind(ComponentKind.STEP_OPERATOR)]}"
        )

    def test_hooks_answer_only_for_their_own_flavor(
        self, operator_harness: OperatorHarness
    ) -> None:
        """Through the core, another flavor's step or job never reaches this plugin.

        The core dispatches by flavor (a plugin needs no ``if operator.flavor != ...``);
        this fails when the hooks are not on the plugin that registered the flavor.
        """
        from stepframe.exceptions import PluginError

        hooks = operator_harness.plugins.hooks
        launch = operator_harness.launch("double", {"x": 1})
        other = other_flavor_component(ComponentKind.STEP_OPERATOR)
        handle = JobHandle(flavor=other.flavor, operator=other.name, job_id="kit-0")
        calls: list[tuple[str, Any]] = [
            ("submit_step", lambda: hooks.submit_step(launch, other, None)),
            ("poll_step", lambda: hooks.poll_step(handle, None, None)),
            ("cancel_step", lambda: hooks.cancel_step(handle, None)),
        ]
        for name, call in calls:
            with pytest.raises(PluginError, match="no installed plugin implements"):
                answer = call()
                raise AssertionError(
                    f"{name} answered {answer!r} for flavor {other.flavor!r}, which no plugin "
                    "registered"
                )
        answer = hooks.fetch_artifacts(handle, launch)
        assert answer is None, f"fetch_artifacts answered {answer!r} for another flavor's job"
        owner = operator_harness.plugins.flavors.provider(ComponentKind.STEP_OPERATOR, self.flavor)
        implemented = operator_harness.plugins.infos[str(owner)].hooks
        missing = {"submit_step", "poll_step", "cancel_step"} - set(implemented)
        assert not missing, (
            f"plugin {owner!r} registered flavor {self.flavor!r} but does not implement "
            f"{sorted(missing)}: the core calls a flavor's hooks on the plugin that registered it"
        )

    def test_submit_poll_and_fetch_outputs(self, operator_harness: OperatorHarness) -> None:
        harness = operator_harness
        launch = harness.launch("double", {"x": 21})
        handle = harness.submit(launch)
        assert handle.flavor == self.flavor, (
            f"the handle's flavor is {handle.flavor!r}, not {self.flavor!r}: poll_step and "
            "cancel_step select by it"
        )
        assert handle.operator == harness.operator.name
        assert handle.job_id, "the handle has no job_id"
        job = harness.follow(handle, self.job_timeout)
        assert job.status.state is JobState.SUCCEEDED, (
            f"the job ended {job.status.state.value} ({job.status.failure_reason}); "
            f"log: {list(job.log_lines[-20:])}"
        )
        result = harness.result(handle, launch, job.status)
        assert result is not None, (
            "the job succeeded but left no result: no fetch_artifacts answer and no result "
            f"manifest at {launch.result_uri} (did the job run `{' '.join(launch.command)}` "
            "against the same artifact store?)"
        )
        assert result.error is None, f"the step failed: {result.error}"
        assert set(result.outputs) == {"output"}, f"outputs: {sorted(result.outputs)}"
        value = harness.load(result.outputs["output"])  # checks the sha256 too
        assert value == 42, f"double(21) came back as {value!r}"

    def test_the_handle_finds_the_job_again_after_a_json_round_trip(
        self, operator_harness: OperatorHarness
    ) -> None:
        """The run history stores handles as JSON; ``stepframe jobs`` and resume use them."""
        harness = operator_harness
        launch = harness.launch("double", {"x": 5})
        handle = harness.submit(launch)
        restored = handle_round_trip(handle)
        assert restored == handle, (
            f"the handle changes through JSON: {handle!r} came back as {restored!r}; keep "
            "handle.data to str, int, float, bool, None, lists and str-keyed dicts"
        )
        job = harness.follow(restored, self.job_timeout)
        harness.finished.add(handle.job_id)
        assert job.status.state is JobState.SUCCEEDED, (
            f"the job, followed through the restored handle, ended {job.status.state.value} "
            f"({job.status.failure_reason})"
        )
        result = harness.result(restored, launch, job.status)
        assert result is not None and "output" in result.outputs, f"result: {result!r}"
        assert harness.load(result.outputs["output"]) == 10

    def test_a_failing_step_returns_the_remote_error_with_its_traceback(
        self, operator_harness: OperatorHarness
    ) -> None:
        harness = operator_harness
        message = f"kit boom {time.time_ns()}"
        launch = harness.launch("explode", {"message": message})
        handle = harness.submit(launch)
        job = harness.follow(handle, self.job_timeout)
        assert job.status.state is not JobState.CANCELLED, "a failing step is not a cancel"
        if self.failed_step_fails_job:
            assert job.status.state is JobState.FAILED, (
                f"the step raised but the job ended {job.status.state.value}; set "
                "failed_step_fails_job = False if the backend cannot tell"
            )
        result = harness.result(handle, launch, job.status)
        assert result is not None, (
            f"the step raised but no error came back (no result manifest at {launch.result_uri})"
        )
        assert result.error is not None, f"the step raised but the result has no error: {result}"
        assert result.error.type == "ValueError", f"error type {result.error.type!r}"
        assert result.error.message == message, f"error message {result.error.message!r}"
        assert "in explode" in result.error.traceback, (
            f"the remote traceback does not show the step's frame:\n{result.error.traceback}"
        )
        assert "raise ValueError(message)" in result.error.traceback
        assert not result.outputs, f"a failed step has no outputs, got {sorted(result.outputs)}"

    def test_log_lines_arrive_in_order_once_each(self, operator_harness: OperatorHarness) -> None:
        if not self.supports_logs:
            pytest.skip(f"{self.flavor} does not return log lines (supports_logs = False)")
        harness = operator_harness
        # The pause is longer than the harness ever waits between polls, so the log
        # arrives over more than one poll wherever the backend shows lines live.
        launch = harness.launch("chatter", {"lines": 25, "pause": 2 * POLL_CAP_SECONDS})
        handle = harness.submit(launch)
        job = harness.follow(handle, self.job_timeout)
        assert job.status.state is JobState.SUCCEEDED, job.status
        seen = lines_with("kit line ", job.log_lines)
        expected = [f"kit line {number}" for number in range(25)]
        assert [line[line.index("kit line ") :] for line in seen] == expected, (
            "the step printed 'kit line 0' .. 'kit line 24'; over all polls (the last one "
            f"included) the log had {seen!r}. Lines must arrive once each, in order: "
            "return only the lines after `cursor`, and a `cursor` for the next poll"
        )

    def test_cancel_is_acknowledged(self, operator_harness: OperatorHarness) -> None:
        harness = operator_harness
        launch = harness.launch("sleeper", {"seconds": self.sleep_seconds * 4})
        handle = harness.submit(launch)
        self._wait_until_running(harness, handle)
        assert harness.cancel(handle) is True, "cancel_step must return True once stopping"
        job = harness.follow(handle, self.cancel_timeout)
        assert job.status.state in (JobState.CANCELLED, JobState.FAILED), (
            f"after cancel_step the job ended {job.status.state.value}"
        )

    def test_cancel_stops_a_running_job(self, operator_harness: OperatorHarness) -> None:
        if not self.supports_cancel:
            pytest.skip(f"{self.flavor} cannot stop a running job (supports_cancel = False)")
        harness = operator_harness
        launch = harness.launch("sleeper", {"seconds": self.sleep_seconds})
        handle = harness.submit(launch)
        started = self._wait_until_running(harness, handle)
        assert harness.cancel(handle) is True, "cancel_step must return True once stopping"
        job = harness.follow(handle, self.cancel_timeout)
        assert job.status.state in (JobState.CANCELLED, JobState.FAILED), (
            f"after cancel_step the job ended {job.status.state.value}"
        )
        # Had the job gone on, the step would have woken up and written its result by now.
        time.sleep(max(0.0, started + self.sleep_seconds + 2.0 - time.monotonic()))
        assert not harness.store.exists(launch.result_uri), (
            f"the job was reported {job.status.state.value} after cancel_step, yet the step "
            f"ran to its end and wrote {launch.result_uri}: cancel_step did not stop it"
        )

    def test_cancelling_a_finished_job_is_harmless(self, operator_harness: OperatorHarness) -> None:
        harness = operator_harness
        launch = harness.launch("double", {"x": 1})
        handle = harness.submit(launch)
        job = harness.follow(handle, self.job_timeout)
        assert job.status.state is JobState.SUCCEEDED, job.status
        assert harness.cancel(handle) is True, (
            "cancel_step on a job that already ended must return True (it is not running)"
        )

    def test_job_names_are_unique_per_run_step_and_attempt(
        self, operator_harness: OperatorHarness
    ) -> None:
        from stepframe._history.database import new_run_id

        harness = operator_harness
        pipeline = "conformance-kit-pipeline-with-a-name-long-enough-to-be-shortened"
        step = "a-step-whose-name-is-long-as-well-" + "x" * 20
        other_run = new_run_id()
        while other_run == harness.run_id:
            other_run = new_run_id()
        variants = [  # (step, attempt, run id)
            (step, 1, harness.run_id),
            (step, 2, harness.run_id),
            (step + "-2", 1, harness.run_id),
            (step, 1, other_run),
        ]
        names: list[str] = []
        launches: list[tuple[JobHandle, Launch]] = []
        for step_name, attempt, run_id in variants:
            launch = harness.launch(
                "double",
                {"x": 1},
                pipeline=pipeline,
                step=step_name,
                attempt=attempt,
                run_id=run_id,
            )
            handle = harness.submit(launch)
            launches.append((handle, launch))
            names.append(self.job_name_of(handle, launch))
        assert len(set(names)) == len(names), (
            f"job names collide for different runs/steps/attempts: {names} (launch job "
            f"names: {[launch.job_name for _, launch in launches]}); when shortening a name "
            "keep a hash of the whole of it"
        )
        if self.max_job_name_length is not None:
            too_long = [name for name in names if len(name) > self.max_job_name_length]
            assert not too_long, f"longer than {self.max_job_name_length}: {too_long}"
        for handle, _ in launches:
            job = harness.follow(handle, self.job_timeout)
            assert job.status.state is JobState.SUCCEEDED, job.status

    def test_the_last_log_line_arrives_without_a_newline(
        self, operator_harness: OperatorHarness
    ) -> None:
        if not self.supports_logs:
            pytest.skip(f"{self.flavor} does not return log lines (supports_logs = False)")
        harness = operator_harness
        launch = harness.launch("unterminated")
        handle = harness.submit(launch)
        job = harness.follow(handle, self.job_timeout)
        assert job.status.state is JobState.SUCCEEDED, job.status
        assert lines_with("kit first line", job.log_lines), list(job.log_lines)
        assert lines_with("kit last line without a newline", job.log_lines), (
            "the step's last output line had no newline, and it never arrived; the log was "
            f"{list(job.log_lines[-5:])}. Hold back a partial line only while the job runs: "
            "the poll that reports the end must return it"
        )

    def test_a_job_that_ended_before_its_first_poll_is_followed_to_its_end(
        self, operator_harness: OperatorHarness
    ) -> None:
        """A job may go from submitted to ended without any poll seeing it run."""
        harness = operator_harness
        launch = harness.launch("double", {"x": 4})
        handle = harness.submit(launch)
        deadline = time.monotonic() + self.job_timeout
        while not harness.store.exists(launch.result_uri):  # the step is done
            assert time.monotonic() < deadline, "the job wrote no result"
            time.sleep(0.05)
        job = harness.follow(handle, self.job_timeout)
        assert job.status.state is JobState.SUCCEEDED, (
            f"a job that ended before it was ever polled ended {job.status.state.value} "
            f"({job.status.failure_reason}); states seen: {[s.value for s in job.states]}"
        )
        result = harness.result(handle, launch, job.status)
        assert result is not None and harness.load(result.outputs["output"]) == 8

    def test_a_job_is_followed_from_another_process_with_its_handle_and_cursor(
        self, operator_harness: OperatorHarness
    ) -> None:
        """What ``run --resume`` and ``stepframe jobs attach`` do: another process, with only
        the stored handle and log cursor, follows the job on; the submitting client is gone."""
        self._skip_unless_jobs_outlive_the_client(operator_harness)
        harness = operator_harness
        launch = harness.launch("chatter", {"lines": 25, "pause": 2 * POLL_CAP_SECONDS})

        def submit_and_watch_a_while() -> dict[str, Any]:
            handle = harness.submit(launch)
            first = harness.follow(
                handle,
                self.job_timeout,
                until=lambda status, lines: bool(lines_with("kit line 0", lines)),
            )
            return {
                "handle": handle_to_json(handle),
                "cursor": first.cursor,
                "lines": list(first.log_lines),
            }

        seen = in_another_process(submit_and_watch_a_while)
        handle = handle_from_json(seen["handle"])
        harness.jobs.append((handle, launch))
        rest = harness.follow(handle, self.job_timeout, cursor=seen["cursor"])
        assert rest.status.state is JobState.SUCCEEDED, (
            f"followed from another process with its handle, the job ended "
            f"{rest.status.state.value} ({rest.status.failure_reason}): a handle must find "
            "the job from any process (put what finds it in handle.data), or set "
            "jobs_outlive_client=False on the flavor"
        )
        if self.supports_logs:
            lines = lines_with("kit line ", [*seen["lines"], *rest.log_lines])
            expected = [f"kit line {number}" for number in range(25)]
            assert [line[line.index("kit line ") :] for line in lines] == expected, (
                "the log, read up to a cursor in one process and on from that cursor in "
                f"another, was {lines!r}; a cursor must mean the same in every process (a "
                "byte offset, a token the backend gives), so a re-attach replays nothing"
            )
        result = harness.result(handle, launch, rest.status)
        assert result is not None and harness.load(result.outputs["output"]) == 25

    def test_a_job_is_cancelled_from_another_process_with_its_handle(
        self, operator_harness: OperatorHarness
    ) -> None:
        """What ``stepframe jobs stop`` does from another shell: only the handle is known."""
        self._skip_unless_jobs_outlive_the_client(operator_harness)
        if not self.supports_cancel:
            pytest.skip(f"{self.flavor} cannot stop a running job (supports_cancel = False)")
        harness = operator_harness
        launch = harness.launch("sleeper", {"seconds": self.sleep_seconds})

        def submit_until_running() -> str:
            handle = harness.submit(launch)
            self._wait_until_running(harness, handle)
            return handle_to_json(handle)

        handle = handle_from_json(in_another_process(submit_until_running))
        started = time.monotonic()
        harness.jobs.append((handle, launch))
        assert harness.cancel(handle) is True, "cancel_step must return True once stopping"
        job = harness.follow(handle, self.cancel_timeout)
        assert job.status.state in (JobState.CANCELLED, JobState.FAILED), (
            f"cancelled from another process with its handle, the job ended "
            f"{job.status.state.value}"
        )
        time.sleep(max(0.0, started + self.sleep_seconds + 2.0 - time.monotonic()))
        assert not harness.store.exists(launch.result_uri), (
            "cancel_step from another process than the one that submitted the job did not "
            "stop it: the step ran to its end"
        )

    def test_find_job_finds_the_submitted_job_and_nothing_else(
        self, operator_harness: OperatorHarness
    ) -> None:
        """The reconcile hook: a submit whose answer was lost is found by its launch."""
        from stepframe._types import JobNotFound

        harness = operator_harness
        hooks = harness.plugins.hooks
        launch = harness.launch("double", {"x": 3})
        handle = harness.submit(launch)
        found = hooks.find_job(launch, harness.operator, harness.credentials)
        if not self.supports_find_job:
            assert found is None, (
                f"find_job answered {found!r}, but supports_find_job = False: set it, or "
                "answer None (cannot tell)"
            )
        else:
            assert isinstance(found, JobHandle), (
                f"find_job answered {found!r} for a launch that was submitted; it must find "
                "the job by the launch's job name"
            )
            assert self.job_name_of(found, launch) == self.job_name_of(handle, launch), (
                f"find_job found {found!r}, not the submitted {handle!r}"
            )
            job = harness.follow(found, self.job_timeout)
            assert job.status.state is JobState.SUCCEEDED, job.status
        harness.follow(handle, self.job_timeout)
        never = harness.launch("double", {"x": 3}, attempt=7)
        absent = hooks.find_job(never, harness.operator, harness.credentials)
        assert absent is None or isinstance(absent, JobNotFound), (
            f"find_job answered {absent!r} for a launch that was never submitted; a job "
            "that does not exist must never be reported found"
        )

    def test_a_pipeline_ends_when_its_job_is_cancelled_from_outside(
        self, suite_plugins: Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """``stepframe jobs stop`` during a run: the run ends, the step is not left running,
        and nothing the cancelled step would have written appears."""
        import threading

        from stepframe._history.database import RunHistory

        if not (self.supports_pipeline_run and self.supports_cancel):
            pytest.skip(f"{self.flavor}: supports_pipeline_run and supports_cancel needed")
        project, operator = self._pipeline_project(suite_plugins, tmp_path, monkeypatch)
        settings = {operator.flavor: dict(self.step_settings())} if self.step_settings() else {}
        source = _PIPELINE.format(operator=operator.name, settings=settings)
        try:
            sleepy = project.load(source, "kit_sleepy")
            outcome: list[Any] = []
            # The cancel comes once the step is seen at work, so the nap only has to
            # outlast the cancel, as in test_cancel_stops_a_running_job.
            nap = self.sleep_seconds
            runner = threading.Thread(
                target=lambda: outcome.append(project.run(sleepy, nap, raise_on_failure=False)),
                daemon=True,
            )
            runner.start()
            database = project.state_dir / "runs.db"
            deadline = time.monotonic() + self.job_timeout
            handle = None
            while handle is None:
                assert runner.is_alive(), f"the run ended before its job started: {outcome}"
                assert time.monotonic() < deadline, "the sleeping step's job never started"
                time.sleep(0.1)
                if database.exists():
                    with RunHistory(database) as history:
                        rows = [j for j in history.list_jobs() if j.step == "nap"]
                    if rows and rows[-1].handle is not None and rows[-1].state == "running":
                        handle = rows[-1].handle
            credentials = self.make_credentials(suite_plugins, operator)
            started = self._wait_until_at_work(
                suite_plugins, handle, credentials, "kit nap started", deadline
            )
            assert suite_plugins.hooks.cancel_step(handle, credentials) is True
            runner.join(self.cancel_timeout + self.job_timeout)
            assert not runner.is_alive(), (
                "the job was cancelled from outside the run, and the run never ended: a "
                "CANCELLED (or FAILED) job must end its step"
            )
            (result,) = outcome
            assert result.steps["nap"].status in ("cancelled", "failed"), result.steps
            # Had the job gone on, the step would have woken up and written its result by now.
            time.sleep(max(0.0, started + nap + 2.0 - time.monotonic()))
            assert not list(project.artifacts_dir.rglob("runs/*/nap/*/result.json")), (
                "the step cancelled from outside ran to its end and wrote its result"
            )
        finally:
            for name in project.modules:
                sys.modules.pop(name, None)

    def test_a_pipeline_step_runs_on_the_operator(
        self, suite_plugins: Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from stepframe.exceptions import RunFailed

        if not self.supports_pipeline_run:
            pytest.skip(f"{self.flavor}: supports_pipeline_run = False")
        project, operator = self._pipeline_project(suite_plugins, tmp_path, monkeypatch)
        settings = {operator.flavor: dict(self.step_settings())} if self.step_settings() else {}
        source = _PIPELINE.format(operator=operator.name, settings=settings)
        try:
            good = project.load(source, "kit_small")
            result = project.run(good)
            assert result.output("total") == 10, project.output
            jobs = [job for job in project.jobs(result.run_id) if job["step"] == "total"]
            assert [(job["flavor"], job["state"]) for job in jobs] == [
                (self.flavor, "succeeded")
            ], jobs
            if self.supports_logs:
                assert "total | summing 5 values" in project.output, project.output

            bad = project.load(source, "kit_failing")
            with pytest.raises(RunFailed) as failed:
                project.run(bad)
            error = failed.value.failures["fail"]
            assert "RuntimeError: kit failure after 10" in str(error), str(error)
            assert re.search(r"in fail\b", str(error)), f"no remote traceback in: {error}"
        finally:
            for name in project.modules:
                sys.modules.pop(name, None)

    # ---- helpers --------------------------------------------------------------------

    def _pipeline_project(
        self, plugins: Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> tuple[TempProject, Component]:
        """A project folder as the working directory, its stack holding the operator."""
        root = tmp_path / "pipeline-project"
        root.mkdir()
        monkeypatch.chdir(root)
        monkeypatch.setattr(sys, "path", list(sys.path))
        monkeypatch.delenv("STEPFRAME_STACK", raising=False)
        project = TempProject(root, plugins)
        operator = self._operator(plugins, tmp_path)
        config = self._stack_config(tmp_path, operator)
        if config:
            project.write_config(config)
        return project, operator

    def _skip_unless_jobs_outlive_the_client(self, harness: OperatorHarness) -> None:
        flavor = harness.plugins.flavors.get(ComponentKind.STEP_OPERATOR, self.flavor)
        if flavor is not None and not flavor.jobs_outlive_client:
            pytest.skip(
                f"{self.flavor}: its jobs die with the client (Flavor.jobs_outlive_client = "
                "False), so no other process can follow them"
            )

    def _wait_until_at_work(
        self,
        plugins: Plugins,
        handle: JobHandle,
        credentials: Credentials | None,
        first_line: str,
        deadline: float,
    ) -> float:
        """Poll a job another client submitted until its step prints ``first_line`` (or
        until RUNNING without logs); the moment it was seen."""
        cursor: str | None = None
        lines: list[str] = []
        while True:
            status = plugins.hooks.poll_step(handle, credentials, cursor)
            cursor = status.cursor
            lines.extend(status.log_lines)
            if self.supports_logs:
                at_work = bool(lines_with(first_line, lines))
            else:
                at_work = status.state is JobState.RUNNING
            if at_work:
                return time.monotonic()
            assert not status.state.is_terminal, (
                f"the sleeping step ended ({status.state.value}: {status.failure_reason}) "
                f"before it could be cancelled; log: {lines}"
            )
            assert time.monotonic() < deadline, f"the step never printed {first_line!r}: {lines}"
            time.sleep(min(max(status.poll_after or 0.2, 0.02), POLL_CAP_SECONDS))

    def _wait_until_running(self, harness: OperatorHarness, handle: JobHandle) -> float:
        """Poll until the step's code runs (its first log line, or RUNNING without logs)."""

        def running(status: Any, lines: list[str]) -> bool:
            if self.supports_logs:
                return bool(lines_with("kit sleeper started", lines))
            return bool(status.state is JobState.RUNNING)

        job = harness.follow(handle, self.job_timeout, until=running)
        assert not job.status.state.is_terminal, (
            f"the sleeping step ended ({job.status.state.value}: {job.status.failure_reason}) "
            f"before it could be cancelled; log: {list(job.log_lines)}"
        )
        return time.monotonic()


def default_component(plugins: Plugins, kind: ComponentKind, flavor_name: str) -> Component:
    """A component of ``flavor_name`` named after it, with the flavor's default config."""
    from stepframe._validation import structure_config
    from stepframe.exceptions import ConfigError

    flavor = plugins.flavors.get(kind, flavor_name)
    config: Any = None
    if flavor is not None and flavor.config_class is not None:
        try:
            config = structure_config({}, flavor.config_class, flavor_name)
        except ConfigError as error:
            raise AssertionError(
                f"{kind.value} flavor {flavor_name!r} needs configuration ({error}); "
                "override make_operator()/make_builder()/make_connector() in the suite"
            ) from None
    return Component(kind=kind, name=flavor_name, flavor=flavor_name, config=config)


def _with_tmp_path(method: Any, tmp_path: Path, *args: Any) -> Any:
    """Call a suite method an author may have overridden with or without ``tmp_path``."""
    import inspect

    try:
        parameters = inspect.signature(method).parameters
    except (TypeError, ValueError):
        parameters = {}  # type: ignore[assignment]
    if len(parameters) > len(args) or "tmp_path" in parameters:
        return method(*args, tmp_path)
    return method(*args)


def _stack_for(operator: Component) -> str:
    """``stepframe.toml`` text with ``operator`` registered and in the active stack."""
    import json

    from stepframe._validation import unstructure_config

    lines = [
        'active_stack = "stepframe-kit"',
        "",
        f"[step_operators.{json.dumps(operator.name)}]",
        f"flavor = {json.dumps(operator.flavor)}",
    ]
    if operator.connector:
        lines.append(f"connector = {json.dumps(operator.connector)}")
    config = unstructure_config(operator.config) if operator.config is not None else {}
    for key, value in sorted(config.items()):
        if value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    lines += ["", '[stacks."stepframe-kit"]', f"step_operators = [{json.dumps(operator.name)}]"]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    """A TOML value for plain config data (JSON's strings, numbers and lists are TOML's)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)
