"""Run one step on SageMaker: ``train`` runs as a training job, the rest on this machine.

Set up the stack as the README's "Run a step on SageMaker" shows, then
``stepframe run examples/sagemaker/pipeline.py``.  The same file runs on SageMaker's
local mode with ``--config local.toml`` (``instance_type = "local"``).
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


# On a GPU, several instances, with PyTorch DDP: a CUDA parent image, a GPU instance
# type, torchrun on every host, and the loss SageMaker should keep from the log.
#
# @step(
#     operator="sagemaker",
#     settings={
#         "docker": {"parent_image": "pytorch/pytorch:2.3.1-cuda12.1-cudnn8-runtime"},
#         "sagemaker": {
#             "instance_type": "ml.g5.12xlarge",
#             "instance_count": 2,
#             "distribution": "torchrun",
#             "metric_definitions": {"loss": r"loss=([0-9.]+)"},
#             "max_runtime_seconds": 3600,
#         },
#     },
# )
# (inside the step: `stepframe.current_job()` gives rank, world size and master address)
@step(
    operator="sagemaker",
    settings={
        "sagemaker": {
            "instance_type": "ml.m5.large",
            "max_runtime_seconds": 3600,
            "metric_definitions": {"slope": r"slope=([-0-9.]+)"},
        }
    },
)
def train(points: list[list[float]]) -> dict[str, float]:
    """Least squares for slope and intercept, in the training job's container."""
    n = len(points)
    mean_x = sum(p[0] for p in points) / n
    mean_y = sum(p[1] for p in points) / n
    slope = sum((p[0] - mean_x) * (p[1] - mean_y) for p in points) / sum(
        (p[0] - mean_x) ** 2 for p in points
    )
    print(f"trained on {n} points: slope={slope:.6f}")  # the slope metric's line
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
