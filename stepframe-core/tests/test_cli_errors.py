"""Errors users will hit from ``stepframe run``: one clear message, a non-zero exit, no
Python traceback, and nothing half-written.  Plus ``stepframe plugins``."""

from __future__ import annotations

import json
import subprocess

import pytest

EXIT_FAILED = 1
EXIT_USAGE = 2


def assert_one_clear_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The process failed with ``code`` and printed exactly one error, no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("stepframe: error: "), result.stderr
    assert result.stderr.count("stepframe: error:") == 1
    assert "Traceback (most recent call last)" not in result.stderr
    # No frames of stepframe itself or of the import machinery.
    assert "stepframe/" not in result.stderr.replace("stepframe: error:", "")
    assert "importlib" not in result.stderr
    return result.stderr


def assert_nothing_written(project) -> None:
    assert not project.state_dir.exists(), sorted(p.name for p in project.state_dir.iterdir())


def test_a_missing_pipeline_file(project, cli) -> None:
    message = assert_one_clear_error(cli("run", "nowhere.py"), EXIT_USAGE)
    assert "pipeline file nowhere.py does not exist" in message
    assert str(project.root) in message
    assert_nothing_written(project)


def test_a_file_that_is_not_python(project, cli) -> None:
    (project.root / "pipeline.txt").write_text("hello")
    message = assert_one_clear_error(cli("run", "pipeline.txt"), EXIT_USAGE)
    assert "pipeline.txt is not a Python file" in message


def test_a_pipeline_file_with_a_syntax_error(project, cli) -> None:
    path = project.write("from stepframe import pipeline\n\ndef broken(:\n    pass\n")
    message = assert_one_clear_error(cli("run", str(path)), EXIT_USAGE)
    assert f"pipeline file {path} failed to import: SyntaxError" in message
    assert f'File "{path}", line 3' in message
    assert "def broken(:" in message
    assert_nothing_written(project)


def test_a_pipeline_file_that_raises_on_import(project, cli) -> None:
    path = project.write(
        """
        import os

        def connect():
            raise RuntimeError("no database configured")

        connect()
        """
    )
    message = assert_one_clear_error(cli("run", str(path)), EXIT_USAGE)
    assert f"pipeline file {path} failed to import: RuntimeError: no database configured" in message
    assert f'File "{path}", line 7, in <module>' in message
    assert "in connect" in message
    assert_nothing_written(project)


def test_a_pipeline_file_whose_import_fails(project, cli) -> None:
    path = project.write("import stepframe_no_such_module\n")
    message = assert_one_clear_error(cli("run", str(path)), EXIT_USAGE)
    assert "ModuleNotFoundError: No module named 'stepframe_no_such_module'" in message
    assert_nothing_written(project)


PIPELINES = """
from stepframe import pipeline, step


@step
def one() -> int:
    return 1


@pipeline
def first():
    one()


@pipeline(name="second-pipeline")
def second():
    one()
"""


def test_a_pipeline_name_not_in_the_file_lists_the_available_ones(project, cli) -> None:
    path = project.write(PIPELINES)
    message = assert_one_clear_error(cli("run", f"{path}:third"), EXIT_USAGE)
    assert "has no pipeline named 'third'" in message
    assert "pipelines in it: first, second" in message
    assert_nothing_written(project)


def test_several_pipelines_without_a_name(project, cli) -> None:
    path = project.write(PIPELINES)
    message = assert_one_clear_error(cli("run", str(path)), EXIT_USAGE)
    assert "defines several pipelines (first, second)" in message
    assert f"{path}:NAME" in message
    assert_nothing_written(project)


def test_a_pipeline_chosen_by_its_name_runs(project, cli) -> None:
    path = project.write(PIPELINES)
    result = cli("run", f"{path}:second-pipeline")
    assert result.returncode == 0, result.stderr
    assert "of pipeline 'second-pipeline'" in result.stdout


def test_a_file_without_pipelines(project, cli) -> None:
    path = project.write("from stepframe import step\n\n@step\ndef one():\n    return 1\n")
    message = assert_one_clear_error(cli("run", str(path)), EXIT_USAGE)
    assert "defines no @pipeline function" in message


OPERATOR = """
from stepframe import pipeline, step


@step
def fine() -> int:
    return 1


@step(operator="{operator}")
def elsewhere(x: int) -> int:
    return x


@pipeline
def remote():
    elsewhere(fine())
"""


@pytest.mark.parametrize(
    ("operator", "advice"),
    [
        ("sagemaker", "pip install stepframe-aws"),
        ("bogus", "install a plugin that provides it, or check the spelling"),
    ],
)
def test_a_step_naming_an_operator_no_plugin_provides(project, cli, operator, advice) -> None:
    path = project.write(OPERATOR.format(operator=operator))
    message = assert_one_clear_error(cli("run", str(path)), EXIT_USAGE)
    assert (
        f"step 'elsewhere' runs on operator '{operator}', which no installed plugin provides"
        in message
    )
    assert advice in message
    assert "Operators available now: inprocess, local" in message
    assert_nothing_written(project)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            '{"sagemakr": {"instance_type": "ml.g5.xlarge"}}',
            "settings for 'sagemakr', which is not",
        ),
        ('{"local": {"enviroment": {}}}', "settings.local: unknown key(s) enviroment"),
        ('{"local": {"environment": {"A": 1}}}', "settings.local.environment"),
        ('{"local": "fast"}', "settings['local'] must be a table of values, got str"),
    ],
)
def test_step_settings_that_do_not_validate(project, cli, settings, expected) -> None:
    path = project.write(
        f"""
from stepframe import pipeline, step

@step(operator="local", settings={settings})
def tuned() -> int:
    return 1

@pipeline
def tuning():
    tuned()
"""
    )
    message = assert_one_clear_error(cli("run", str(path)), EXIT_USAGE)
    assert "step 'tuned'" in message
    assert expected in message
    assert_nothing_written(project)


def test_an_output_no_materializer_can_store(project, cli) -> None:
    path = project.write(
        """
        import threading

        from stepframe import pipeline, step

        @step(outputs=["count", "lock"])
        def make():
            return 1, threading.Lock()

        @step
        def use(lock) -> None:
            pass

        @pipeline
        def locked():
            count, lock = make()
            use(lock)
        """
    )
    result = cli("run", str(path))
    assert result.returncode == EXIT_FAILED, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        "step 'make' failed: stepframe.exceptions.NoMaterializerError: step 'make' output 'lock': "
        "cannot store a value of type _thread.lock" in result.stdout
    )
    assert "register_materializers" in result.stdout
    # The error is stepframe's, not the step's: no traceback of stepframe's internals.
    assert "Traceback" not in result.stdout
    assert "[use] skipped" in result.stdout
    rows = project.run_rows()
    assert [status for _, status in rows] == ["failed"]


def test_a_constant_no_materializer_can_store_fails_before_the_run(project, cli) -> None:
    path = project.write(
        """
        import threading

        from stepframe import pipeline, step

        @step
        def use(lock) -> None:
            pass

        @pipeline
        def locked():
            use(threading.Lock())
        """
    )
    message = assert_one_clear_error(cli("run", str(path)), EXIT_FAILED)
    assert "step 'use' input 'lock'" in message and "_thread.lock" in message
    assert not project.database_path.exists()


def test_a_step_that_raises(project, cli) -> None:
    path = project.write(
        """
        from stepframe import pipeline, step

        @step(operator="local")
        def divide(a: int, b: int) -> float:
            return a / b

        @pipeline
        def division():
            divide(1, 0)
        """
    )
    result = cli("run", str(path))
    assert result.returncode == EXIT_FAILED
    assert "Traceback" not in result.stderr
    assert "step 'divide' failed: ZeroDivisionError: division by zero" in result.stdout
    # The step's own traceback, not the entrypoint's.
    traceback = result.stdout.split("Traceback from where the step ran:", 1)[1]
    assert f'File "{path}", line 6, in divide' in traceback
    assert "entrypoint" not in traceback
    assert [status for _, status in project.run_rows()] == ["failed"]


# ---- stepframe plugins ---------------------------------------------------------------------

CORE_PLUGINS = {
    "inprocess": ("stepframe._builtin.inprocess", ["step_operator:inprocess"]),
    "local": ("stepframe._builtin.local", ["step_operator:local"]),
    "local-artifact-store": ("stepframe._builtin.artifact_store", ["artifact_store:local"]),
}


def test_plugins_json_lists_the_core_plugins(cli) -> None:
    result = cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    listed = {entry["name"]: entry for entry in json.loads(result.stdout)}
    assert set(CORE_PLUGINS) <= set(listed)
    for name, (module, flavors) in CORE_PLUGINS.items():
        entry = listed[name]
        assert entry["distribution"] == "stepframe-core"
        assert entry["version"]
        assert entry["module"] == module
        assert entry["flavors"] == flavors
        assert "register_flavors" in entry["hooks"]
    assert listed["local"]["hooks"] == [
        "cancel_step",
        "find_job",
        "poll_step",
        "register_flavors",
        "submit_step",
    ]
    assert listed["local-artifact-store"]["hooks"] == ["open_artifact_store", "register_flavors"]


def test_plugins_lists_the_core_plugins(cli) -> None:
    result = cli("plugins")
    assert result.returncode == 0, result.stderr
    text = result.stdout
    for name, (module, flavors) in CORE_PLUGINS.items():
        assert f"{name}  (stepframe-core " in text
        assert f"module:  {module}" in text
        assert f"flavors: {', '.join(flavors)}" in text
    assert "hooks:   cancel_step, find_job, poll_step, register_flavors, submit_step" in text
