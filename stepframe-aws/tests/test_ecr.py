"""The ``ecr`` container registry's ``prepare_repository`` against moto's ECR.

The last test runs a whole pipeline: the core builds an ImageRequest for a step whose
operator needs an image, a small image builder calls ``request.prepare_repository``
before it would push, and the repository appears in moto's ECR.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from stepframe import (
    Component,
    ComponentKind,
    ConfigError,
    Credentials,
    Flavor,
    ImageRef,
    ImageRequest,
    JobHandle,
    Launch,
    ResourceRequest,
    hookimpl,
)
from stepframe.testing import (  # noqa: F401 - fixtures
    SmallPipeline,
    TempProject,
    make_plugins,
    small_pipeline,
    stepframe_plugin,
    stepframe_project,
)
from stepframe_aws._ecr.config import EcrRegistryConfig
from stepframe_aws._ecr.repository import ensure_repository

ACCOUNT = "123456789012"  # moto's account
HOST = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"


def ecr(region: str = "us-east-1") -> Any:
    import boto3

    return boto3.client("ecr", region_name=region)


def repositories(region: str = "us-east-1") -> list[str]:
    found = ecr(region).describe_repositories()["repositories"]
    return sorted(str(item["repositoryName"]) for item in found)


def registry(uri: str = HOST, *, create: bool = True, name: str = "ecr") -> Component:
    return Component(
        ComponentKind.CONTAINER_REGISTRY,
        name,
        "ecr",
        EcrRegistryConfig(uri=uri, create_repositories=create),
    )


# ---- ensure_repository ----------------------------------------------------------------


def test_a_missing_repository_is_created() -> None:
    assert repositories() == []
    assert ensure_repository(registry(), f"{HOST}/team/trainer", None) is True
    found = ecr().describe_repositories(repositoryNames=["team/trainer"])["repositories"]
    assert found[0]["registryId"] == ACCOUNT
    assert found[0]["repositoryUri"] == f"{HOST}/team/trainer"


def test_preparing_again_is_a_no_op() -> None:
    ecr().create_repository(repositoryName="made-by-hand")
    for _ in range(2):
        assert ensure_repository(registry(), f"{HOST}/made-by-hand", None) is True
        assert ensure_repository(registry(), f"{HOST}/made-by-stepframe", None) is True
    assert repositories() == ["made-by-hand", "made-by-stepframe"]


def test_with_creation_switched_off_a_missing_repository_is_a_clear_error() -> None:
    ecr().create_repository(repositoryName="managed")
    assert ensure_repository(registry(create=False), f"{HOST}/managed", None) is True
    with pytest.raises(ConfigError) as caught:
        ensure_repository(registry(create=False, name="prod"), f"{HOST}/missing", None)
    message = str(caught.value)
    assert "ECR repository 'missing' does not exist" in message
    assert "aws ecr create-repository --repository-name missing --region us-east-1" in message
    assert "stepframe container-registry update prod --create-repositories true" in message
    assert repositories() == ["managed"], "a repository was created although switched off"


@pytest.mark.parametrize(
    "repository",
    [
        f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/app",  # another region
        "210987654321.dkr.ecr.us-east-1.amazonaws.com/app",  # another account
        "registry.example.com/app",
    ],
)
def test_a_repository_on_another_host_is_refused(repository: str) -> None:
    host = repository.partition("/")[0]
    with pytest.raises(ConfigError) as caught:
        ensure_repository(registry(), repository, None)
    message = str(caught.value)
    assert f"its host {host!r} is not the host of container registry 'ecr' ({HOST})" in message
    assert f"push to {HOST}/app" in message
    assert repositories() == []


def test_the_registry_uri_may_carry_a_scheme_and_slash() -> None:
    assert ensure_repository(registry(f"https://{HOST}/"), f"{HOST}/app", None)
    assert repositories() == ["app"]


@pytest.mark.parametrize("name", ["App", "app:latest", "app@sha256:abc", "a", "team//app"])
def test_invalid_repository_names_are_refused_before_calling_aws(name: str) -> None:
    with pytest.raises(ConfigError, match=r"not a valid ECR repository name|expected HOST/NAME"):
        ensure_repository(registry(), f"{HOST}/{name}", None)


def test_the_region_comes_from_the_registry_host() -> None:
    """A connector set up for eu-central-1 still prepares the us-west-2 registry."""
    host = f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com"
    credentials = Credentials(
        connector="aws",
        resource=ResourceRequest("generic"),
        values={
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            "region": "eu-central-1",
        },
    )
    assert ensure_repository(registry(host), f"{host}/app", credentials)
    assert repositories("us-west-2") == ["app"]
    assert repositories("eu-central-1") == []
    assert repositories("us-east-1") == []


def test_the_hook_is_called_for_ecr_registries_only() -> None:
    """The core dispatches by flavor: another registry's repository never reaches ECR."""
    plugins = make_plugins(load=("aws",))
    plugins.hooks.prepare_repository(registry(), f"{HOST}/via-hook", None)
    assert repositories() == ["via-hook"]
    other = attrs.evolve(registry(), flavor="kit-registry")
    plugins.hooks.prepare_repository(other, f"{HOST}/not-ecr", None)
    assert repositories() == ["via-hook"]


# ---- the whole path: pipeline -> image builder -> prepare_repository -> ECR -------------

REPOSITORY_NAME = "stepframe-steps"


class TinyContainerBackend:
    """An image builder and an operator needing images, for one test.

    The builder does what real builders do with a registry: call
    ``request.prepare_repository`` before checking or pushing a tag.  The operator runs
    the step on the ``inprocess`` operator once the core has built its image.
    """

    def __init__(self) -> None:
        self.plugins: Any = None
        self.events: list[str] = []
        self.images: list[ImageRef | None] = []

    @hookimpl
    def register_flavors(self, register: Callable[[Flavor], None]) -> None:
        register(Flavor(kind=ComponentKind.IMAGE_BUILDER, name="tiny-builder"))
        register(
            Flavor(
                kind=ComponentKind.STEP_OPERATOR,
                name="tiny-container",
                needs_image=True,
                jobs_outlive_client=False,
            )
        )

    @hookimpl
    def build_image(self, request: ImageRequest, builder: Component) -> ImageRef | None:
        if builder.flavor != "tiny-builder":
            return None
        assert request.target_registry is not None and request.prepare_repository is not None
        repository = f"{request.target_registry.config.uri}/{REPOSITORY_NAME}"
        self.events.append(f"before prepare: {repositories()}")
        request.prepare_repository(repository)
        # Here a real builder checks the tag and pushes; the repository must exist now.
        self.events.append(f"pushing to {repository}: {repositories()}")
        digest = "sha256:" + "ab" * 32
        return ImageRef(uri=f"{repository}@{digest}", digest=digest)

    @hookimpl
    def submit_step(
        self, launch: Launch, operator: Component, credentials: Credentials | None
    ) -> JobHandle | None:
        if operator.flavor != "tiny-container":
            return None
        self.images.append(launch.image)
        inprocess = attrs.evolve(operator, flavor="inprocess")
        return self.plugins.hooks.submit_step(launch, inprocess, credentials)


def test_a_pipeline_step_needing_an_image_gets_its_ecr_repository_created(
    # The kit's fixtures, imported above: the names must match.
    stepframe_project: TempProject,  # noqa: F811
    stepframe_plugin: Callable[..., Any],  # noqa: F811
    small_pipeline: Callable[..., SmallPipeline],  # noqa: F811
) -> None:
    backend = TinyContainerBackend()
    backend.plugins = stepframe_plugin(backend, "tiny-container", load=("aws",))
    stepframe_project.write_config(
        textwrap.dedent(
            f"""
            [image_builders.tiny]
            flavor = "tiny-builder"

            [container_registries.ecr]
            flavor = "ecr"
            uri = "{HOST}"

            [step_operators.boxed]
            flavor = "tiny-container"

            [stacks.aws]
            image_builder = "tiny"
            container_registry = "ecr"
            step_operators = ["boxed"]
            """
        )
    )
    small = small_pipeline(operator="boxed")

    result = stepframe_project.run(small.pipeline, stack="aws")

    assert result.output(small.step) == small.expected
    assert backend.events == [
        "before prepare: []",
        f"pushing to {HOST}/{REPOSITORY_NAME}: ['{REPOSITORY_NAME}']",
    ]
    image = backend.images[0]
    assert image is not None and image.uri.startswith(f"{HOST}/{REPOSITORY_NAME}@sha256:")
