"""Run one step on Vertex AI: ``train`` runs as a CustomJob, the rest on this machine.

Set up the stack as stepframe-gcp's README ("Run a step on Vertex AI") shows, then
``stepframe run examples/vertex/pipeline.py``.  The same file runs the CustomJob's
container on this machine's Docker engine with ``--config local.toml``
(``machine_type = "local"``).
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
    operator="vertex",
    settings={
        "vertex": {
            "machine_type": "n1-standard-4",
            "timeout": 3600,
            "labels": {"example": "fit-a-line"},
        }
    },
)
def train(points: list[list[float]]) -> dict[str, float]:
    """Least squares for slope and intercept, in the CustomJob's container."""
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
