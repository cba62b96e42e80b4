"""A step keeps its function's signature; inside a pipeline its value is typed as the return."""

from __future__ import annotations

from typing_extensions import assert_type

from stepframe import Pipeline, Step, pipeline, step


@step
def load(rows: int, *, seed: int = 0) -> list[float]:
    return [float(seed)] * rows


@step(name="fit", cache=False, retries=1)
def train(data: list[float], rate: float) -> float:
    return sum(data) * rate


@step(outputs=["model", "score"])
def split(data: list[float]) -> tuple[str, float]:
    return "model", max(data)


positional_fit: Step[[list[float], float], float] = train
assert_type(load(3), list[float])
assert_type(load(3, seed=1), list[float])
assert_type(train([1.0], 0.5), float)
assert_type(train.with_options(operator="docker")([1.0], rate=0.5), float)
assert_type(load.func(2), list[float])


@pipeline
def training(rows: int = 10, rate: float = 0.1) -> None:
    data = load(rows)
    model, score = split(data)
    assert_type(model, str)
    assert_type(score, float)
    train(data, rate)


@pipeline(name="other", settings={"docker": {"parent_image": "python:3.11-slim"}})
def other(rows: int) -> None:
    train(load(rows), rate=0.5)


takes_rows: Pipeline[[int]] = other
assert_type(training.compile(rows=3).name, str)
assert_type(other(3).run_id, str)
