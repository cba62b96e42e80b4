"""The conformance kit catches what it promises to: a backend of kit_backends.py that gets
one thing wrong fails exactly the tests about that thing, in an inner session
(conftest.py), and still passes others."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

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
    inner_kit, kind: str, backend: str, selection: str | None, must_fail: set[str]
) -> None:
    args = ("-k", selection) if selection else ()
    outcomes = inner_kit.run(inner_kit.suite(kind, backend), *args)
    assert inner_kit.failed(outcomes) == must_fail, outcomes
    assert any(outcome == "passed" for outcome in outcomes.values()), (
        f"nothing passed, so the failures prove little: {outcomes}"
    )
