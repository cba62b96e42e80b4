"""The image builder conformance suite."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from stepframe._plugins.manager import Plugins
from stepframe._types import Component, ComponentKind, ImageRef, ImageRequest
from stepframe.testing._fixtures import make_plugins
from stepframe.testing._jobs import other_flavor_component

__all__ = ["ImageBuilderSuite"]

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@attrs.define
class BuildCase:
    """One test's builder and a small project to build images of."""

    plugins: Plugins
    builder: Component
    code_root: Path


class ImageBuilderSuite:
    """Conformance tests for an image builder flavor.  Subclass it in a ``Test*`` class.

    The suite builds images of a small project (a module and a ``requirements.txt``) in a
    temporary folder.  Override `make_builder` and `make_request` for the registry,
    parent image and settings your builder needs, and `count_builds` if you can tell how
    many builds the backend ran (to prove a rebuild did nothing).
    """

    #: the image builder flavor under test (required).
    flavor: ClassVar[str] = ""
    #: installed entry points to load besides the core's; None loads every installed one.
    plugin_names: ClassVar[tuple[str, ...] | None] = None
    #: plugin objects to register directly: modules, instances or (name, plugin) pairs.
    extra_plugins: ClassVar[tuple[Any, ...]] = ()
    #: ImageRef.digest is returned, as ``sha256:<64 hex>``.
    returns_digest: ClassVar[bool] = True
    #: a change in ImageRequest.requirements gives a new image.
    hashes_requirements: ClassVar[bool] = True

    # ---- what a flavor overrides ----------------------------------------------------

    def make_plugins(self) -> Plugins:
        return make_plugins(*self.extra_plugins, load=self.plugin_names)

    def make_builder(self, plugins: Plugins) -> Component:
        from stepframe.testing._operator_suite import default_component

        return default_component(plugins, ComponentKind.IMAGE_BUILDER, self.flavor)

    def make_request(self, code_root: Path, **changes: Any) -> ImageRequest:
        """The request to build; ``changes`` are ImageRequest fields the test varies."""
        return ImageRequest(code_root=str(code_root), **changes)

    def count_builds(self, plugins: Plugins, builder: Component) -> int | None:
        """How many builds the backend has run so far, or None if it cannot tell."""
        return None

    # ---- fixtures -------------------------------------------------------------------

    @pytest.fixture
    def build_case(self, tmp_path: Path) -> BuildCase:
        assert self.flavor, f"{type(self).__name__} must set `flavor`"
        plugins = self.make_plugins()
        code_root = tmp_path / "project"
        (code_root / "package").mkdir(parents=True)
        (code_root / "package" / "__init__.py").write_text("")
        (code_root / "package" / "steps.py").write_text(
            textwrap.dedent(
                """
                def double(x):
                    return 2 * x
                """
            )
        )
        (code_root / "requirements.txt").write_text("")
        return BuildCase(plugins, self.make_builder(plugins), code_root)

    def build(self, case: BuildCase, **changes: Any) -> ImageRef:
        request = self.make_request(case.code_root, **changes)
        return case.plugins.hooks.build_image(request, case.builder)

    # ---- the tests ------------------------------------------------------------------

    def test_the_flavor_is_registered_as_an_image_builder(self, build_case: BuildCase) -> None:
        flavors = build_case.plugins.flavors
        assert flavors.get(ComponentKind.IMAGE_BUILDER, self.flavor) is not None, (
            f"no plugin registered image builder flavor {self.flavor!r}"
        )

    def test_build_image_answers_only_for_its_own_flavor(self, build_case: BuildCase) -> None:
        from stepframe.exceptions import PluginError

        with pytest.raises(PluginError, match="no installed plugin implements"):
            answer = build_case.plugins.hooks.build_image(
                self.make_request(build_case.code_root),
                other_flavor_component(ComponentKind.IMAGE_BUILDER),
            )
            raise AssertionError(f"build_image answered {answer!r} for another flavor")

    def test_a_build_returns_the_image_by_digest(self, build_case: BuildCase) -> None:
        image = self.build(build_case)
        assert image.uri, "the image has no URI"
        if self.returns_digest:
            assert image.digest is not None and _DIGEST.match(image.digest), (
                f"digest {image.digest!r} is not sha256:<64 hex digits>; steps run by digest"
            )

    def test_rebuilding_an_unchanged_project_is_a_no_op(self, build_case: BuildCase) -> None:
        first = self.build(build_case)
        builds = self.count_builds(build_case.plugins, build_case.builder)
        second = self.build(build_case)
        assert second == first, (
            f"the same project built twice gave {first!r} and then {second!r}; hash the "
            "request's content so that an unchanged project builds and pushes nothing"
        )
        if builds is not None:
            after = self.count_builds(build_case.plugins, build_case.builder)
            assert after == builds, f"the rebuild ran the backend's build: {builds} -> {after}"

    def test_a_code_change_gives_a_new_image(self, build_case: BuildCase) -> None:
        first = self.build(build_case)
        steps = build_case.code_root / "package" / "steps.py"
        steps.write_text(steps.read_text() + "\n\ndef triple(x):\n    return 3 * x\n")
        second = self.build(build_case)
        assert second.uri != first.uri or second.digest != first.digest, (
            f"changing the code gave the same image {second!r}: the step would run old code"
        )

    def test_a_requirements_change_gives_a_new_image(self, build_case: BuildCase) -> None:
        if not self.hashes_requirements:
            pytest.skip(f"{self.flavor}: hashes_requirements = False")
        first = self.build(build_case, requirements=())
        second = self.build(build_case, requirements=("attrs>=23.1",))
        assert (second.uri, second.digest) != (first.uri, first.digest), (
            "adding a requirement gave the same image"
        )
