"""Calls that a user's mypy must refuse, each with the error code it must give."""

from __future__ import annotations

from stepframe import pipeline, step


@step
def load(rows: int) -> list[float]:
    return [0.0] * rows


@step(retries=2)
def train(data: list[float], rate: float) -> float:
    return sum(data) * rate


@step
def describe(text: str) -> str:
    return text


load("ten")  # E: arg-type
load()  # E: call-arg
load(3, seeds=2)  # E: call-arg
train([1.0], rate="fast")  # E: arg-type
train.with_options(cache=False)([1.0])  # E: call-arg
count: int = describe("x")  # E: assignment


@pipeline
def training(rows: int) -> None:
    data = load(rows)
    describe(data)  # E: arg-type
    train(data, 0.1).upper()  # E: attr-defined


training("many")  # E: arg-type
training.compile()  # E: call-arg
