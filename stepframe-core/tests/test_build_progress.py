"""An image builder's progress lines reach the run's console beside the step (issue 12).

The builder gets ``ImageRequest.progress``; what it says there is the step's detail while
the step runs (a line each on a plain console, as here).
"""

from __future__ import annotations

PLUGIN = """
from stepframe import ComponentKind, Flavor, ImageRef, StepframeError, hookimpl


@hookimpl
def register_flavors(register):
    register(Flavor(kind=ComponentKind.IMAGE_BUILDER, name="talkative", description="talks"))
    register(
        Flavor(kind=ComponentKind.STEP_OPERATOR, name="boxed", needs_image=True,
               description="needs an image")
    )


@hookimpl
def build_image(request, builder):
    request.progress("image: step 1/2 FROM base")
    request.progress("image: pushing 1.0 MB of 2.0 MB")
    return ImageRef("example.test/steps:1", "sha256:" + "0" * 64)


@hookimpl
def submit_step(launch, operator, credentials):
    raise StepframeError("this test stops at the submit")
"""

STACK = """
active_stack = "boxed"

[image_builders.talkative]
flavor = "talkative"

[step_operators.boxed]
flavor = "boxed"

[stacks.boxed]
image_builder = "talkative"
step_operators = ["boxed"]
"""

PIPELINE = """
from stepframe import pipeline, step


@step(operator="boxed")
def train() -> int:
    return 1


@pipeline
def boxed_pipeline() -> None:
    train()
"""


def test_build_progress_is_shown_beside_the_step(project, make_plugins, run) -> None:
    module = project.module(PLUGIN)
    (project.root / "stepframe.toml").write_text(STACK)
    pipeline = project.load(PIPELINE)
    result = run(pipeline, plugins=make_plugins((module.__name__, module)), raise_on_failure=False)
    assert result.status == "failed"
    lines = run.output.splitlines()
    assert "[train] running (image: step 1/2 FROM base)" in lines, run.output
    assert "[train] running (image: pushing 1.0 MB of 2.0 MB)" in lines, run.output
