"""The pipeline API: @step and @pipeline, data flow, outputs, options, compile errors and
type hints honoured when inputs are loaded."""

from __future__ import annotations

import os

import pytest

from stepframe import RunFailed, StepFailed
from stepframe.exceptions import PipelineDefinitionError

FLOW = """
from stepframe import pipeline, step


@step
def numbers(n: int) -> list[int]:
    return list(range(n))


@step
def total(values: list[int]) -> int:
    return sum(values)


@step
def describe(label: str, value: int) -> str:
    return f"{label}={value}"


@pipeline
def flow(n: int = 4):
    values = numbers(n)
    describe("sum", total(values))
"""


def test_data_flows_between_steps(project, run) -> None:
    result = run(project.load(FLOW))
    assert result.status == "succeeded"
    assert result.output("numbers") == [0, 1, 2, 3]
    assert result.output("total") == 6
    assert result.output("describe") == "sum=6"


def test_pipeline_params_and_constants_reach_the_steps(project, run) -> None:
    flow = project.load(FLOW)
    spec = flow.compile(n=10)
    assert spec.params == {"n": 10}
    result = run(spec)
    assert result.output("total") == 45
    assert result.output("describe") == "sum=45"
    with project.history() as history:
        assert history.get_run(result.run_id).params == {"n": 10}  # a JSON value stays typed


def test_calling_a_pipeline_from_python_runs_it(project, capsys) -> None:
    flow = project.load(FLOW)
    result = flow(n=3)  # the process-wide plugins and the project found from cwd
    assert result.status == "succeeded"
    assert result.output("describe") == "sum=3"
    assert (project.state_dir / "runs.db").is_file()
    assert f"run {result.run_id} succeeded" in capsys.readouterr().out


def test_calling_a_step_outside_a_pipeline_runs_the_plain_function(project) -> None:
    module = project.module(FLOW)
    assert module.total([1, 2, 3]) == 6
    assert module.describe("x", 1) == "x=1"
    assert not project.state_dir.exists()  # nothing was run or recorded


TUPLES = """
from stepframe import pipeline, step


@step
def split(text: str) -> tuple[str, int]:
    return text.upper(), len(text)


@step(outputs=["low", "high"])
def bounds(values: list[int]):
    return min(values), max(values)


@step
def show(word: str, length: int, low: int, high: int) -> str:
    return f"{word}/{length}/{low}/{high}"


@pipeline
def tuples():
    word, length = split("hello")
    limits = bounds([5, 1, 9])
    show(word, length, limits.low, high=limits.high)
"""


def test_tuple_outputs_and_named_outputs(project, run) -> None:
    pipe = project.load(TUPLES)
    spec = pipe.compile()
    assert spec.steps["split"].step.output_names == ("output_0", "output_1")
    assert spec.steps["bounds"].step.output_names == ("low", "high")
    assert dict(spec.steps["show"].inputs)["low"].output == "low"
    result = run(spec)
    assert result.output("split", "output_0") == "HELLO"
    assert result.output("split", "output_1") == 5
    assert result.output("bounds", "low") == 1
    assert result.output("bounds", "high") == 9
    assert result.output("show") == "HELLO/5/1/9"


def test_a_multi_output_step_returning_the_wrong_shape_fails(project, run) -> None:
    pipe = project.load(
        """
        from stepframe import pipeline, step

        @step(outputs=["a", "b"])
        def pair():
            return 1

        @pipeline
        def wrong_shape():
            pair()
        """
    )
    with pytest.raises(RunFailed) as caught:
        run(pipe)
    failure = caught.value.failures["pair"]
    assert "declares 2 outputs (a, b)" in str(failure)


TWICE = """
from stepframe import pipeline, step


@step
def add(a: int, b: int) -> int:
    return a + b


@pipeline
def twice():
    first = add(1, 2)
    second = add(first, 10)
    add(second, first)
"""


def test_the_same_step_twice_gets_numbered_names(project, run) -> None:
    spec = project.load(TWICE).compile()
    assert list(spec.steps) == ["add", "add_2", "add_3"]
    assert spec.steps["add_3"].upstream == ("add_2", "add")
    result = run(spec)
    assert [result.output(n) for n in ("add", "add_2", "add_3")] == [3, 13, 16]


OPTIONS = """
import os

from stepframe import pipeline, step


@step(settings={"local": {"environment": {"GREETING": "hello"}}})
def env(name: str) -> tuple[int, str]:
    return os.getpid(), os.environ.get(name, "unset")


@pipeline
def options():
    env("GREETING")
    env.with_options(name="remote", operator="local")("GREETING")
    env.with_options(
        name="louder", operator="local", settings={"local": {"environment": {"GREETING": "HI"}}}
    )("GREETING")
"""


def test_with_options_changes_name_operator_and_settings(project, run) -> None:
    module = project.module(OPTIONS)
    spec = module.options.compile()
    assert list(spec.steps) == ["env", "remote", "louder"]
    assert spec.steps["env"].operator is None
    assert spec.steps["remote"].operator == "local"
    assert spec.steps["remote"].settings == {"local": {"environment": {"GREETING": "hello"}}}
    assert spec.steps["louder"].settings == {"local": {"environment": {"GREETING": "HI"}}}
    # The original step is unchanged.
    assert module.env.operator is None and module.env.name == "env"

    result = run(spec)
    assert result.output("env", "output_0") == os.getpid()
    assert result.output("env", "output_1") == "unset"  # in process: no local settings
    assert result.output("remote", "output_0") != os.getpid()
    assert result.output("remote", "output_1") == "hello"
    assert result.output("louder", "output_1") == "HI"


# ---- compile errors ---------------------------------------------------------------------

COMPILE_ERRORS = """
from stepframe import pipeline, step


@step
def word() -> str:
    return "w"


@step
def count(n: int) -> int:
    return n


@step(outputs=["a", "b"])
def pair() -> tuple[int, int]:
    return 1, 2


@pipeline
def unknown_argument():
    count(n=1, bogus=2)


@pipeline
def missing_argument():
    count()


@pipeline
def all_outputs():
    count(pair())


@pipeline
def incompatible():
    count(word())


@pipeline
def empty():
    pass
"""


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("unknown_argument", ["'count'", "'bogus'"]),
        ("missing_argument", ["'count'", "'n'"]),
        ("all_outputs", ["'count'", "'n'", "all 2 outputs", "'pair'"]),
        ("incompatible", ["'count'", "'n'", "expects int", "'word'", "str"]),
        ("empty", ["'empty'", "calls no steps"]),
    ],
)
def test_compile_errors_name_the_step_and_input(project, name, expected) -> None:
    module = project.module(COMPILE_ERRORS)
    with pytest.raises(PipelineDefinitionError) as caught:
        getattr(module, name).compile()
    for text in expected:
        assert text in str(caught.value)


def test_compatible_or_unknown_annotations_compile(project) -> None:
    module = project.module(
        """
        from stepframe import pipeline, step

        @step
        def anything():
            return 1

        @step
        def some() -> object:
            return 1

        @step
        def an_int() -> int:
            return 1

        @step
        def a_list() -> list:
            return [1]

        @step
        def wants_int(x: int) -> int:
            return x

        @step
        def wants_float(x: float) -> float:
            return x

        @step
        def wants_tuple(x: tuple) -> tuple:
            return x

        @step
        def wants_nothing(x):
            return x

        @pipeline
        def fine():
            wants_int(anything())
            wants_int(some())
            wants_float(an_int())
            wants_tuple(a_list())
            wants_nothing(an_int())
        """
    )
    assert len(module.fine.compile().steps) == 10


# ---- type hints when inputs are loaded ----------------------------------------------------

HINTS = """
from stepframe import pipeline, step


@step
def make_pair() -> tuple[int, ...]:  # one output: a tuple of any length
    return 3, 4


@step
def loose_pair():
    return [5, 6]


@step
def kind_of(pair: tuple[int, int]) -> str:
    return type(pair).__name__


@step
def kind_of_unhinted(pair) -> str:
    return type(pair).__name__


@step
def anything() -> object:
    return "not a number"


@step
def increment(x: int) -> int:
    return x + 1


@step
def half(x: float) -> float:
    return x / 2


@pipeline
def tuples(operator: str = "inprocess"):
    kind_of.with_options(operator=operator)(make_pair())
    kind_of.with_options(name="kind_of_loose", operator=operator)(loose_pair())
    kind_of_unhinted(make_pair())
    half(increment(1))


@pipeline
def mismatch(operator: str = "inprocess"):
    increment.with_options(operator=operator)(anything())
"""


@pytest.mark.parametrize("operator", ["inprocess", "local"])
def test_type_hints_are_honoured_when_inputs_load(project, run, operator) -> None:
    module = project.module(HINTS)
    result = run(module.tuples.compile(operator))
    # JSON stores tuples as lists; the consumer's hint turns them back into a tuple.
    assert result.output("kind_of") == "tuple"
    assert result.output("kind_of_loose") == "tuple"
    assert result.output("kind_of_unhinted") == "list"
    assert result.output("half") == 1.0


@pytest.mark.parametrize("operator", ["inprocess", "local"])
def test_an_input_type_mismatch_names_the_step_and_input(project, run, operator) -> None:
    module = project.module(HINTS)
    with pytest.raises(RunFailed) as caught:
        run(module.mismatch.compile(operator))
    failure = caught.value.failures["increment"]
    assert isinstance(failure, StepFailed)
    assert failure.error_type == "stepframe.exceptions.InputTypeError"
    assert "step 'increment' input 'x'" in str(failure)
    assert "expected int, got str" in str(failure)
