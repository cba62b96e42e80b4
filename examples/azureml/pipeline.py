"""Run one step on Azure Machine Learning: ``train`` runs as a command job, the rest here.

Set up the stack as the README's "Run a step on Azure Machine Learning" shows, then
``stepframe run examples/azureml/pipeline.py``.  The same file runs the command job's
container on this machine's Docker engine with ``--config examples/azureml/local.toml``
(``instance_type = "local"``).
"""

from __future__ import annotations

import random

from stepframe import pipeline, step


@step
def make_data(rows: int = 200, seed: int = 3) -> list[list[float]]:
    """Points on the line y = 2x + 1, with a little noise."""
    rng = random.Random(seed)
    return [
        [x, 2.0 * x + 1.0 + rng.gauss(0, 0.1)] for x in (rng.uniform(0, 10) for _ in range(rows))
    ]


@step(
    operator="azureml",
    settings={
        "azureml": {
            "instance_type": "Standard_DS3_v2",
            "timeout": 3600,
            "tags": {"example": "fit-a-line"},
        }
    },
)
def train(points: list[list[float]]) -> dict[str, float]:
    """Least squares for slope and intercept, in the command job's container."""
    n = len(points)
    mean_x = sum(p[0] for p in points) / n
    mean_y = sum(p[1] for p in points) / n
    slope = sum((p[0] - mean_x) * (p[1] - mean_y) for p in points) / sum(
        (p[0] - mean_x) ** 2 for p in points
    )
    print(f"trained on {n} points: slope={slope:.6f}")
    return {"slope": slope, "intercept": mean_y - slope * mean_x}


@step
def report(model: dict[str, float]) -> str:
    line = f"y = {model['slope']:.3f} x + {model['intercept']:.3f}"
    print(line)
    return line


@pipeline
def fit_a_line() -> None:
    report(train(make_data()))


if __name__ == "__main__":
    fit_a_line()
