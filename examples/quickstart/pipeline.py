"""Quickstart: a small but real training pipeline, standard library only.

Run it with ``stepframe run examples/quickstart/pipeline.py`` (or ``python`` on this
file).  ``train`` runs in its own Python process through the ``local`` operator, the same
path a step takes on SageMaker; every other step runs in process.
"""

from __future__ import annotations

import math
import random

from stepframe import pipeline, step

Rows = list[list[float]]


@step
def load_data(rows: int = 400, seed: int = 7) -> tuple[Rows, list[float]]:
    """A synthetic house-price data set: size, rooms and age against price."""
    rng = random.Random(seed)
    features, prices = [], []
    for _ in range(rows):
        size = rng.uniform(40, 220)
        rooms = float(rng.randint(1, 6))
        age = rng.uniform(0, 80)
        price = 3.1 * size + 12.0 * rooms - 0.8 * age + 50 + rng.gauss(0, 15)
        features.append([size, rooms, age])
        prices.append(price)
    print(f"loaded {rows} rows")
    return features, prices


@step(outputs=["train_x", "train_y", "test_x", "test_y"])
def split(
    features: Rows, prices: list[float], test_share: float = 0.25
) -> tuple[Rows, list[float], Rows, list[float]]:
    cut = int(len(features) * (1 - test_share))
    return features[:cut], prices[:cut], features[cut:], prices[cut:]


@step(outputs=["means", "scales"])
def fit_scaler(train_x: Rows) -> tuple[list[float], list[float]]:
    columns = list(zip(*train_x))
    means = [sum(c) / len(c) for c in columns]
    scales = [
        math.sqrt(sum((v - m) ** 2 for v in c) / len(c)) or 1.0 for c, m in zip(columns, means)
    ]
    return means, scales


def _scale(rows: Rows, means: list[float], scales: list[float]) -> Rows:
    return [[(v - m) / s for v, m, s in zip(row, means, scales)] for row in rows]


@step(operator="local")
def train(
    train_x: Rows, train_y: list[float], means: list[float], scales: list[float], epochs: int = 300
) -> dict[str, list[float]]:
    """Linear regression by full-batch gradient descent on standardised features."""
    xs = _scale(train_x, means, scales)
    weights, bias, rate = [0.0] * len(xs[0]), 0.0, 0.1
    for epoch in range(epochs):
        grads, grad_b = [0.0] * len(weights), 0.0
        for row, target in zip(xs, train_y):
            error = sum(w * v for w, v in zip(weights, row)) + bias - target
            grads = [g + error * v for g, v in zip(grads, row)]
            grad_b += error
        weights = [w - rate * g / len(xs) for w, g in zip(weights, grads)]
        bias -= rate * grad_b / len(xs)
        if epoch % 100 == 0:
            print(f"epoch {epoch}: bias {bias:.1f}")
    return {"weights": weights, "bias": [bias]}


@step
def evaluate(
    model: dict[str, list[float]],
    test_x: Rows,
    test_y: list[float],
    means: list[float],
    scales: list[float],
) -> dict[str, float]:
    xs = _scale(test_x, means, scales)
    predictions = [
        sum(w * v for w, v in zip(model["weights"], row)) + model["bias"][0] for row in xs
    ]
    mean_y = sum(test_y) / len(test_y)
    residual = sum((p - y) ** 2 for p, y in zip(predictions, test_y))
    total = sum((y - mean_y) ** 2 for y in test_y)
    metrics = {"rmse": math.sqrt(residual / len(test_y)), "r2": 1 - residual / total}
    print(f"test RMSE {metrics['rmse']:.2f}, R^2 {metrics['r2']:.3f}")
    return metrics


@pipeline
def quickstart(rows: int = 400) -> None:
    features, prices = load_data(rows)
    train_x, train_y, test_x, test_y = split(features, prices)
    means, scales = fit_scaler(train_x)
    model = train(train_x, train_y, means, scales)
    evaluate(model, test_x, test_y, means, scales)


if __name__ == "__main__":
    run = quickstart()
    print(run.output("evaluate"))
