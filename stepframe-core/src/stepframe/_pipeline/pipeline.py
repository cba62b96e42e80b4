"""The ``@pipeline`` decorator and compiling a pipeline into a DAG of step specs.

Compiling runs the pipeline function once with a compilation active: every step call
records an invocation whose inputs are either outputs of earlier invocations or constant
values.  Call order is therefore already a topological order.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, overload

import attrs

from stepframe._manifests import FunctionRef
from stepframe._names import check_step_name
from stepframe._pipeline.step import EMPTY, OutputRef, Outputs, Step
from stepframe.exceptions import PipelineDefinitionError

if TYPE_CHECKING:
    from stepframe._orchestrator.run import RunResult

_P = ParamSpec("_P")

__all__ = [
    "ConstantInput",
    "Pipeline",
    "PipelineSpec",
    "StepSpec",
    "UpstreamInput",
    "current_compilation",
    "pipeline",
]


@attrs.frozen
class UpstreamInput:
    """An input fed by another step's output."""

    step: str
    output: str


@attrs.frozen
class ConstantInput:
    """An input given as a literal value in the pipeline function."""

    value: Any


@attrs.frozen
class StepSpec:
    """One step invocation in a compiled pipeline."""

    name: str
    step: Step[..., Any]
    inputs: Mapping[str, UpstreamInput | ConstantInput]
    operator: str | None
    settings: Mapping[str, Any]
    cache: bool
    function: FunctionRef

    @property
    def upstream(self) -> tuple[str, ...]:
        names = (i.step for i in self.inputs.values() if isinstance(i, UpstreamInput))
        return tuple(dict.fromkeys(names))


@attrs.frozen
class PipelineSpec:
    """A compiled pipeline: steps in an order where each comes after its inputs."""

    name: str
    steps: Mapping[str, StepSpec]
    settings: Mapping[str, Any]
    code_root: str
    params: Mapping[str, Any]

    def downstream_of(self, name: str) -> list[str]:
        return [spec.name for spec in self.steps.values() if name in spec.upstream]


_current: contextvars.ContextVar[_Compilation | None] = contextvars.ContextVar(
    "stepframe_compilation", default=None
)


def current_compilation() -> _Compilation | None:
    return _current.get()


def function_ref(func: Callable[..., Any]) -> tuple[FunctionRef, Path | None]:
    """Where a job imports ``func`` from, and the code root that import is relative to.

    A script run as ``__main__`` is imported by its file name in the job, and the
    ``if __name__ == "__main__"`` guard keeps it from running the pipeline again there.
    """
    module = sys.modules.get(func.__module__)
    file = getattr(module, "__file__", None)
    if file is None:
        return FunctionRef(func.__module__, func.__qualname__), None
    path = Path(file).resolve()
    if func.__module__ == "__main__":
        return FunctionRef(path.stem, func.__qualname__, path.name), path.parent
    depth = len(func.__module__.split("."))
    if path.name == "__init__.py":
        depth += 1
    root = path.parents[depth - 1]
    return FunctionRef(func.__module__, func.__qualname__, str(path.relative_to(root))), root


# Conversions `typecheck.conform` makes when an input loads, so the compile-time check
# must not reject them: wanted type to the produced types it accepts.
_CONVERTIBLE: dict[type, tuple[type, ...]] = {
    float: (int,),
    tuple: (list,),
    list: (tuple,),
    set: (list, tuple, frozenset),
    frozenset: (list, tuple, set),
}


def _obviously_incompatible(produced: Any, wanted: Any) -> bool:
    """True only when both are plain classes that can never match (``str`` vs ``int``).

    A missing annotation (``inspect.Parameter.empty``, itself a class) or ``object``
    on the producing side says nothing about the value, so it never conflicts; the
    value is checked when it is loaded instead.
    """
    if not (isinstance(produced, type) and isinstance(wanted, type)):
        return False
    # On Python 3.10 `list[float]` passes for a class, but issubclass() refuses it.
    if isinstance(produced, types.GenericAlias) or isinstance(wanted, types.GenericAlias):
        return False
    if EMPTY in (produced, wanted) or produced is object:
        return False
    if wanted is typing.Any or produced is typing.Any:
        return False
    if issubclass(produced, _CONVERTIBLE.get(wanted, ())):
        return False
    return not issubclass(produced, wanted)


class _Compilation:
    def __init__(self, pipeline_name: str) -> None:
        self.pipeline_name = pipeline_name
        self.steps: dict[str, StepSpec] = {}

    def _unique_name(self, name: str) -> str:
        if name not in self.steps:
            return name
        n = 2
        while f"{name}_{n}" in self.steps:
            n += 1
        return f"{name}_{n}"

    def add_invocation(
        self, step: Step[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # A step's and its outputs' names become folders and files of the run: refuse a
        # bad one now, not when the run gets to it (see _names.py).
        where = f"pipeline {self.pipeline_name!r}: step"
        check_step_name(step.name, where)
        for output in step.output_names:
            check_step_name(output, f"{where} {step.name!r} output", "@step(outputs=[...])")
        name = self._unique_name(step.name)
        try:
            bound = step.signature.bind(*args, **kwargs)
        except TypeError as error:
            raise PipelineDefinitionError(
                f"pipeline {self.pipeline_name!r} calls step {step.name!r} wrongly: {error}"
            ) from None
        bound.apply_defaults()
        inputs: dict[str, UpstreamInput | ConstantInput] = {}
        for param, value in bound.arguments.items():
            inputs[param] = self._input(name, step, param, value)
        ref, _ = function_ref(step.func)
        self.steps[name] = StepSpec(
            name=name,
            step=step,
            inputs=inputs,
            operator=step.operator,
            settings=step.settings,
            cache=step.cache,
            function=ref,
        )
        refs = [OutputRef(name, out, ann) for out, ann in step.output_annotations.items()]
        return refs[0] if len(refs) == 1 else Outputs(refs)

    def _input(
        self, step_name: str, step: Step[..., Any], param: str, value: Any
    ) -> UpstreamInput | ConstantInput:
        if isinstance(value, Outputs):
            raise PipelineDefinitionError(
                f"step {step_name!r} input {param!r} got all {len(value)} outputs of step "
                f"{value[0].invocation!r}; unpack them (a, b = {value[0].invocation}(...)) and "
                "pass one"
            )
        if isinstance(value, OutputRef):
            if value.invocation not in self.steps:
                raise PipelineDefinitionError(
                    f"step {step_name!r} input {param!r} uses an output of step "
                    f"{value.invocation!r} from another pipeline"
                )
            wanted = step.input_annotations.get(param, EMPTY)
            if _obviously_incompatible(value.annotation, wanted):
                expected = getattr(wanted, "__name__", wanted)
                produced = getattr(value.annotation, "__name__", value.annotation)
                raise PipelineDefinitionError(
                    f"step {step_name!r} input {param!r} expects {expected}, but step "
                    f"{value.invocation!r} output {value.name!r} is annotated {produced}"
                )
            return UpstreamInput(value.invocation, value.name)
        if isinstance(value, (list, tuple, dict)) and _contains_output_ref(value):
            raise PipelineDefinitionError(
                f"step {step_name!r} input {param!r} nests step outputs inside a container; "
                "pass each output as its own input"
            )
        return ConstantInput(value)


def _contains_output_ref(value: Any) -> bool:
    if isinstance(value, OutputRef):
        return True
    if isinstance(value, dict):
        return any(_contains_output_ref(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_output_ref(v) for v in value)
    return False


class Pipeline(Generic[_P]):
    """A function that composes steps.  Calling it compiles and runs it.

    Generic in the function's parameters, so type checkers check the arguments of a
    call (or of `compile`) as those of the function.
    """

    def __init__(
        self,
        func: Callable[_P, object],
        *,
        name: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        functools.update_wrapper(self, func)
        self.func = func
        self.name = name or func.__name__
        self.settings: dict[str, Any] = dict(settings or {})

    def compile(self, *args: _P.args, **kwargs: _P.kwargs) -> PipelineSpec:
        """Build the DAG without running anything."""
        if current_compilation() is not None:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} is called inside another pipeline; call its steps instead"
            )
        try:
            bound = inspect.signature(self.func).bind(*args, **kwargs)
        except TypeError as error:
            raise PipelineDefinitionError(f"pipeline {self.name!r}: {error}") from None
        bound.apply_defaults()
        compilation = _Compilation(self.name)
        token = _current.set(compilation)
        try:
            self.func(*bound.args, **bound.kwargs)
        finally:
            _current.reset(token)
        if not compilation.steps:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} calls no steps; call @step functions inside it"
            )
        _, root = function_ref(self.func)
        return PipelineSpec(
            name=self.name,
            steps=compilation.steps,
            settings=self.settings,
            code_root=str(root or Path.cwd()),
            params=dict(bound.arguments),
        )

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> RunResult:
        """Compile and run the pipeline in this process's orchestrator.

        :raises RunFailed: when a step fails; its cause is the first `StepFailed`.
        """
        from stepframe._orchestrator.run import run_pipeline

        return run_pipeline(self.compile(*args, **kwargs))

    def __repr__(self) -> str:
        return f"<pipeline {self.name!r}>"


@overload
def pipeline(func: Callable[_P, object], /) -> Pipeline[_P]: ...


@overload
def pipeline(
    *, name: str | None = None, settings: Mapping[str, Any] | None = None
) -> Callable[[Callable[_P, object]], Pipeline[_P]]: ...


def pipeline(
    func: Callable[_P, object] | None = None,
    /,
    *,
    name: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> Pipeline[_P] | Callable[[Callable[_P, object]], Pipeline[_P]]:
    """Make a function a pipeline: inside it, step calls build the DAG.

    :param name: the pipeline's name (default: the function's name).
    :param settings: per-flavor settings for every step, below each step's own.
    """

    def decorate(function: Callable[_P, object]) -> Pipeline[_P]:
        return Pipeline(function, name=name, settings=settings)

    if func is not None:
        return decorate(func)
    return decorate
