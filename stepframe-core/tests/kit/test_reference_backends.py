"""The conformance kit is fair: backends written the way a third-party plugin would be,
that do everything right, pass every suite (each in an inner session: conftest.py)."""

from __future__ import annotations

pytest_plugins = ["pytester"]


def test_reference_backends_pass_every_suite(inner_kit) -> None:
    """Third-party-style backends that do everything right pass: the suites are fair."""
    source = "".join(
        inner_kit.suite(kind, backend, own_class_name=True)
        for kind, backend in [
            ("operator", "DetachedOperator"),
            ("store", "DirStorePlugin"),
            ("builder", "HashingBuilder"),
            ("connector", "TokenConnector"),
            ("policy", "AllowListPolicy"),
        ]
    )
    outcomes = inner_kit.run(source)
    assert inner_kit.failed(outcomes) == set(), outcomes
    skipped = {name for name, outcome in outcomes.items() if outcome == "skipped"}
    assert skipped <= {
        "test_round_trip_of_each_builtin_materializer[numpy-array]",
        "test_round_trip_of_each_builtin_materializer[numpy-scalar]",
    }, skipped
    assert len(outcomes) >= 40, outcomes


def test_an_operator_whose_jobs_die_with_the_client_passes_the_rest(
    inner_kit,
) -> None:
    """jobs_outlive_client=False: the cross-process tests are skipped, saying why."""
    outcomes = inner_kit.run(inner_kit.suite("operator", "SubprocessOperator"))
    assert inner_kit.failed(outcomes) == set(), outcomes
    skipped = {name for name, outcome in outcomes.items() if outcome == "skipped"}
    assert skipped == {
        "test_a_job_is_followed_from_another_process_with_its_handle_and_cursor",
        "test_a_job_is_cancelled_from_another_process_with_its_handle",
    }, outcomes


def test_a_first_edition_operator_without_flavor_checks_is_harmless(
    inner_kit,
) -> None:
    """It would take over every flavor's steps and jobs if asked; the core only asks it
    about its own (hook contract, second edition), so it passes."""
    suite = inner_kit.suite("operator", "AnswersForEveryone")
    outcomes = inner_kit.run(suite, "-k", "own_flavor or submit_poll")
    assert set(outcomes.values()) == {"passed"} and len(outcomes) == 2, outcomes


def test_a_truncating_store_fails_every_test_that_reads_back(inner_kit) -> None:
    outcomes = inner_kit.run(inner_kit.suite("store", "TruncatingStorePlugin"))
    failing = inner_kit.failed(outcomes)
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


def test_a_suite_without_a_flavor_says_so(inner_kit) -> None:
    outcomes = inner_kit.run(
        """
        class TestNothing(StepOperatorSuite):
            plugin_names = ()
        """,
        "-k",
        "registered",
    )
    assert outcomes == {"test_the_flavor_is_registered_as_a_step_operator": "failed in setup"}
