"""The ``@step`` decorator.

Inside a ``@pipeline`` function, calling a step does not run it: it records an
invocation and returns placeholders for its outputs, which later steps take as inputs.
Outside a pipeline, a step is its plain function, so it stays easy to unit test.

For type checkers a step keeps its function's signature (``Step[P, R]``): a call is
checked against the function's parameters and gives the function's return type ``R``.
Inside a pipeline the value is really an `OutputRef` (or `Outputs`) placeholder, but it
stands for exactly that ``R`` when the next step takes it, so typing it as ``R`` lets
mypy check that one step's output fits the next step's input.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Literal, ParamSpec, TypeVar, cast, get_args, overload

from stepframe.exceptions import PipelineDefinitionError

__all__ = ["OutputRef", "Outputs", "RetryOn", "Step", "step"]

EMPTY = inspect.Parameter.empty

_P = ParamSpec("_P")
_R = TypeVar("_R")


class OutputRef:
    """A placeholder for one output of a step invocation, while a pipeline compiles."""

    __slots__ = ("annotation", "invocation", "name")

    def __init__(self, invocation: str, name: str, annotation: Any) -> None:
        self.invocation = invocation
        self.name = name
        self.annotation = annotation

    def __repr__(self) -> str:
        return f"<output {self.name!r} of step {self.invocation!r}>"

    def __bool__(self) -> bool:
        raise PipelineDefinitionError(
            f"{self!r} has no value while the pipeline is being defined; branch inside a "
            "step instead of on a step's output"
        )


class Outputs(tuple):  # type: ignore[type-arg]
    """The outputs of a multi-output step: unpack it, index it or use attribute names."""

    def __getattr__(self, name: str) -> OutputRef:
        for ref in self:
            if ref.name == name:
                return ref  # type: ignore[no-any-return]
        raise AttributeError(f"step has no output named {name!r}")


def _resolved_hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:
        # A forward reference that cannot be resolved must not make the step unusable;
        # we fall back to the raw annotations and check less.
        return dict(getattr(func, "__annotations__", {}))


def _output_annotations(names: Sequence[str] | None, return_hint: Any) -> dict[str, Any]:
    is_tuple = typing.get_origin(return_hint) is tuple
    args = typing.get_args(return_hint) if is_tuple else ()
    fixed_tuple = is_tuple and bool(args) and args[-1] is not Ellipsis
    if names is None:
        if fixed_tuple and len(args) > 1:
            return {f"output_{i}": arg for i, arg in enumerate(args)}
        return {"output": return_hint}
    if len(names) == 1:
        return {names[0]: return_hint}
    if fixed_tuple and len(args) != len(names):
        raise PipelineDefinitionError(
            f"outputs={list(names)} names {len(names)} outputs but the return annotation "
            f"has {len(args)}; make them agree"
        )
    return {name: (args[i] if fixed_tuple else EMPTY) for i, name in enumerate(names)}


#: Which failures ``@step(retries=...)`` retries.
RetryOn = Literal["any", "retryable"]


def _count(option: str, value: object, step: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PipelineDefinitionError(
            f"step {step!r}: {option}={value!r}; give a whole number, 0 or more"
        )
    return value


def _seconds(option: str, value: object, step: str, *, allow_zero: bool = False) -> float:
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (value > 0 or (allow_zero and value == 0))
    ):
        least = "0 or more" if allow_zero else "more than 0"
        raise PipelineDefinitionError(
            f"step {step!r}: {option}={value!r}; give seconds ({least}) or a datetime.timedelta"
        )
    return float(value)


class Step(Generic[_P, _R]):
    """A function that runs as one unit of a pipeline, wherever its operator says.

    Generic in the function's parameters and return type, so that type checkers check
    each call of the step as a call of the function.
    """

    def __init__(
        self,
        func: Callable[_P, _R],
        *,
        name: str | None = None,
        operator: str | None = None,
        settings: Mapping[str, Any] | None = None,
        outputs: Sequence[str] | None = None,
        cache: bool = True,
        retries: int = 0,
        retry_delay: float | datetime.timedelta = 0.0,
        retry_on: RetryOn = "any",
        timeout: float | datetime.timedelta | None = None,
    ) -> None:
        if not callable(func):
            raise PipelineDefinitionError(f"@step decorates functions, not {func!r}")
        if inspect.iscoroutinefunction(func) or inspect.isgeneratorfunction(func):
            raise PipelineDefinitionError(
                f"step {func.__name__!r} is a coroutine or generator function; a step must "
                "return its outputs"
            )
        functools.update_wrapper(self, func)
        self.func = func
        self.name = name or func.__name__
        self.operator = operator
        self.settings: dict[str, Any] = dict(settings or {})
        self.cache = cache
        self.retries = _count("retries", retries, self.name)
        self.retry_delay = _seconds("retry_delay", retry_delay, self.name, allow_zero=True)
        if retry_on not in get_args(RetryOn):
            raise PipelineDefinitionError(
                f"step {self.name!r}: retry_on={retry_on!r}; use 'any' (every failure) or "
                "'retryable' (only failures the operator reports as retryable)"
            )
        self.retry_on: RetryOn = retry_on
        self.timeout = None if timeout is None else _seconds("timeout", timeout, self.name)
        self.signature = inspect.signature(func)
        hints = _resolved_hints(func)
        self.input_annotations: dict[str, Any] = {
            param: hints.get(param, EMPTY) for param in self.signature.parameters
        }
        self.output_annotations = _output_annotations(
            list(outputs) if outputs is not None else None, hints.get("return", EMPTY)
        )
        for param in self.signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise PipelineDefinitionError(
                    f"step {self.name!r} takes *{param.name}; steps need named inputs"
                )

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(self.output_annotations)

    def with_options(
        self,
        *,
        name: str | None = None,
        operator: str | None = None,
        settings: Mapping[str, Any] | None = None,
        cache: bool | None = None,
    ) -> Step[_P, _R]:
        """A copy of this step with some options changed; settings merge key by key.

        Retries and the timeout are kept as they are.
        """
        merged = {**self.settings, **(settings or {})}
        copy = Step(
            self.func,
            name=name or self.name,
            operator=operator if operator is not None else self.operator,
            settings=merged,
            outputs=self.output_names if len(self.output_names) > 1 else None,
            cache=self.cache if cache is None else cache,
            retries=self.retries,
            retry_delay=self.retry_delay,
            retry_on=self.retry_on,
            timeout=self.timeout,
        )
        copy.output_annotations = dict(self.output_annotations)
        return copy

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """Outside a pipeline, run the function; inside one, record an invocation.

        Inside a pipeline the value returned is a placeholder for the outputs (an
        `OutputRef`, or `Outputs` for several), typed as ``R`` for the next step's sake.
        """
        from stepframe._pipeline.pipeline import current_compilation

        compilation = current_compilation()
        if compilation is None:
            return self.func(*args, **kwargs)
        return cast("_R", compilation.add_invocation(self, args, kwargs))

    def __repr__(self) -> str:
        return f"<step {self.name!r} ({self.func.__module__}.{self.func.__qualname__})>"


@overload
def step(func: Callable[_P, _R], /) -> Step[_P, _R]: ...


@overload
def step(
    *,
    name: str | None = None,
    operator: str | None = None,
    settings: Mapping[str, Any] | None = None,
    outputs: Sequence[str] | None = None,
    cache: bool = True,
    retries: int = 0,
    retry_delay: float | datetime.timedelta = 0.0,
    retry_on: RetryOn = "any",
    timeout: float | datetime.timedelta | None = None,
) -> Callable[[Callable[_P, _R]], Step[_P, _R]]: ...


def step(
    func: Callable[_P, _R] | None = None,
    /,
    *,
    name: str | None = None,
    operator: str | None = None,
    settings: Mapping[str, Any] | None = None,
    outputs: Sequence[str] | None = None,
    cache: bool = True,
    retries: int = 0,
    retry_delay: float | datetime.timedelta = 0.0,
    retry_on: RetryOn = "any",
    timeout: float | datetime.timedelta | None = None,
) -> Step[_P, _R] | Callable[[Callable[_P, _R]], Step[_P, _R]]:
    """Make a function a pipeline step.

    :param name: the step's name in the pipeline (default: the function's name).
    :param operator: the step operator component to run it with (default: in process).
    :param settings: per-flavor settings, e.g. ``{"sagemaker": {"instance_type": ...}}``.
    :param outputs: names for the outputs; several names mean the function returns a
        tuple of that length.  Without it, a ``tuple[A, B]`` return annotation gives
        outputs ``output_0`` and ``output_1``, anything else one output ``output``.
    :param cache: reuse recorded outputs when code, inputs and settings are unchanged.
    :param retries: how many times a failed attempt is run again, each as a new attempt
        with its own job (recorded in the ledger).
    :param retry_delay: seconds (or a ``timedelta``) to wait before each retry.
    :param retry_on: ``"any"`` retries every failure; ``"retryable"`` only the failures the
        operator reports as retryable (a reclaimed spot instance, say) and timeouts.
    :param timeout: seconds (or a ``timedelta``) an attempt may take from its submission;
        a longer one is cancelled through its operator and fails as timed out.  An
        in-process step cannot be stopped: it is reported timed out and its result, when
        it comes, is discarded.
    """

    def decorate(function: Callable[_P, _R]) -> Step[_P, _R]:
        return Step(
            function,
            name=name,
            operator=operator,
            settings=settings,
            outputs=outputs,
            cache=cache,
            retries=retries,
            retry_delay=retry_delay,
            retry_on=retry_on,
            timeout=timeout,
        )

    if func is not None:
        return decorate(func)
    return decorate
