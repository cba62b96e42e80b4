"""The ``sagemaker`` operator's pre-flight: a step's settings checked before anything runs.

The core calls ``check_step`` for every step of a run before the first one runs and
before any image is built.  Here the step's settings go through the same checks as the
CreateTrainingJob request at submit time (`request_problems`: the rules the API model
cannot state, then every min, max, pattern and enum of the model over the whole
request), on a draft launch that has everything the real one will
have but the image's digest and the run's id.  Submit checks again: that stays the last
line before money is spent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from stepframe import ImageRef, Launch, PlannedStep
from stepframe_aws._sagemaker.config import (
    IMAGE_PLATFORM,
    LOCAL_INSTANCE_TYPE,
    SageMakerOperatorConfig,
    SageMakerSettings,
)
from stepframe_aws._sagemaker.request import FORBIDDEN_ENVIRONMENT, request_problems

__all__ = ["step_problems"]

# A run id of the shape the core makes, for the draft launch's job name and URIs.
_DRAFT_RUN_ID = "20000101-000000-000000"
_DRAFT_DIGEST = "sha256:" + "0" * 64


def _settings(step: PlannedStep) -> SageMakerSettings | str:
    if isinstance(step.settings, SageMakerSettings):
        return step.settings
    if step.settings is None:
        return SageMakerSettings()
    if isinstance(step.settings, Mapping):
        try:
            return SageMakerSettings(**step.settings)
        except TypeError as error:
            return f"settings.sagemaker: {error}"
    return f"settings.sagemaker: expected SageMakerSettings, got {type(step.settings).__name__}"


def _draft_launch(step: PlannedStep, settings: SageMakerSettings) -> Launch:
    """The launch the step will get, as far as it is known before the run."""
    base = f"{step.artifact_store_uri.rstrip('/')}/runs/{_DRAFT_RUN_ID}/{step.step}/attempt-1"
    manifest = f"{base}/launch.json"
    registry = getattr(getattr(step.container_registry, "config", None), "uri", None)
    return Launch(
        run_id=_DRAFT_RUN_ID,
        pipeline=step.pipeline,
        step=step.step,
        attempt=1,
        # The core's job names are of this shape (only its length matters here, and
        # training_job_name shortens any name to what SageMaker accepts).
        job_name=re.sub(
            r"[^a-z0-9]+", "-", f"{step.pipeline}-{step.step}-{_DRAFT_RUN_ID}-1".lower()
        ),
        manifest_uri=manifest,
        result_uri=f"{base}/result.json",
        command=("python", "-m", "stepframe.entrypoint", manifest),
        environment={"STEPFRAME_LAUNCH_MANIFEST": manifest},
        settings=settings,
        image=ImageRef(f"{registry or 'registry.invalid'}/image", _DRAFT_DIGEST),
        code_root=step.code_root,
    )


def _image_platform_problem(step: PlannedStep) -> str | None:
    """A builder ``platform`` setting for the step other than the one SageMaker runs.

    The core asks the builder for `IMAGE_PLATFORM` (the flavor's ``image_platform``);
    a step that sets another one explicitly would be refused by the builder after the
    upstream steps ran, so it is refused here, before anything runs.
    """
    builder = step.image_builder
    raw = step.settings_by_flavor.get(builder.flavor) if builder is not None else None
    value = raw.get("platform") if isinstance(raw, Mapping) else None
    if value is None or value == IMAGE_PLATFORM:
        return None
    return (
        f"settings.{builder.flavor if builder else 'docker'}.platform {value!r}: SageMaker "
        f"runs {IMAGE_PLATFORM} images only; remove the setting or set it to {IMAGE_PLATFORM!r}"
    )


def step_problems(step: PlannedStep) -> list[str]:
    """What SageMaker would refuse about ``step``, one line per problem."""
    config = step.operator.config
    if not isinstance(config, SageMakerOperatorConfig):
        return [
            f"step operator {step.operator.name!r} has no sagemaker configuration; register "
            "it with `stepframe step-operator register NAME --flavor sagemaker "
            "--execution-role ARN`"
        ]
    settings = _settings(step)
    if isinstance(settings, str):
        return [settings]
    platform = _image_platform_problem(step)
    return ([platform] if platform else []) + _settings_problems(step, config, settings)


def _settings_problems(
    step: PlannedStep, config: SageMakerOperatorConfig, settings: SageMakerSettings
) -> list[str]:
    # The operator's environment and tags lie under the step's, key by key (as at submit).
    settings = attrs.evolve(
        settings,
        environment={**(config.environment or {}), **settings.environment},
        tags={**(config.tags or {}), **settings.tags},
    )
    if (settings.instance_type or config.instance_type) == LOCAL_INSTANCE_TYPE:
        leaked = sorted(set(settings.environment) & set(FORBIDDEN_ENVIRONMENT))
        if leaked:
            return [
                f"settings.sagemaker.environment sets {', '.join(leaked)}: client "
                "credentials never go into a job"
            ]
        return []
    # The whole request the step will send, against the rules and the API model.
    return request_problems(_draft_launch(step, settings), config, settings, None)
