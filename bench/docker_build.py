"""Docker image builds of the quickstart's code: no change, code-only change, no cache.

    python bench/docker_build.py [--registry 127.0.0.1:5000] [--base-image IMAGE]

Needs the stepframe-docker plugin, a Docker engine, a registry and a base image (on this
project's machines `bash .ci/services.sh` starts them all).  Copies the quickstart into a
temporary project, then through the plugin's ``build_image`` hook, pushing to a registry
namespace of its own:

1. first build and push (the engine's layer cache may already hold the lower layers);
2. no change, asked as a new process would (nothing built or pushed): target < 0.5 s;
3. a code-only change (one line of pipeline.py): build plus push, target < 3 s;
4. the same kind of change with the engine's cache disabled, and the ratio of the two:
   target >= 5.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", default="127.0.0.1:5000")
    parser.add_argument("--base-image", default="stepframe-test-base:bookworm")
    args = parser.parse_args()
    try:
        import stepframe_docker
        from stepframe_docker import plugin
    except ImportError:
        print("docker_build: stepframe-docker is not installed; pip install ./stepframe-docker")
        return 2
    from stepframe import Component, ComponentKind, ImageRequest

    namespace = f"{args.registry}/bench-{uuid.uuid4().hex[:8]}"
    registry = Component(
        ComponentKind.CONTAINER_REGISTRY,
        "bench",
        "default",
        stepframe_docker.ContainerRegistryConfig(namespace),
    )

    def builder(no_cache: bool = False) -> Component:
        config = stepframe_docker.DockerBuilderConfig(
            parent_image=args.base_image, no_cache=no_cache
        )
        return Component(ComponentKind.IMAGE_BUILDER, "docker", "docker", config)

    with tempfile.TemporaryDirectory(prefix="stepframe-bench-") as scratch:
        code_root = Path(scratch) / "quickstart"
        shutil.copytree(ROOT / "examples" / "quickstart", code_root)
        request = ImageRequest(code_root=str(code_root), target_registry=registry)
        pipeline_file = code_root / "pipeline.py"

        def build(label: str, no_cache: bool = False) -> stepframe_docker.BuildReport:
            stepframe_docker.forget_builds()  # each call as a new process would make it
            started = time.perf_counter()
            plugin.build_image(request=request, builder=builder(no_cache))
            seconds = time.perf_counter() - started
            report = stepframe_docker.build_reports()[-1]
            print(
                f"{label:<34} {seconds:7.3f} s  {report.action:<11} "
                f"steps {report.cached_steps}/{report.steps} cached, "
                f"pushed {report.pushed_layers} layer(s) {report.pushed_bytes / 1e6:.3f} MB "
                f"(build {report.build_seconds:.3f} s, push {report.push_seconds:.3f} s)"
            )
            report.seconds = seconds
            return report

        def change_code() -> None:
            with open(pipeline_file, "a") as stream:
                stream.write(f"# change {uuid.uuid4().hex}\n")

        try:
            build("first build + push")
            unchanged = build("no change")
            change_code()
            code_only = build("code-only change")
            change_code()
            cold = build("code-only change, cache disabled", no_cache=True)
        except stepframe_docker.DockerError as error:
            print(f"docker_build: {error}")
            return 1
        finally:
            _untag(namespace)
    ratio = cold.seconds / code_only.seconds
    print(f"no change:        {unchanged.seconds:.3f} s (target < 0.5 s)")
    print(f"code-only change: {code_only.seconds:.3f} s (target < 3 s)")
    print(f"cache disabled:   {cold.seconds:.3f} s; ratio {ratio:.1f}x (target >= 5x)")
    return 0


def _untag(namespace: str) -> None:
    """Remove the local tags the benchmark made (the layers stay as build cache)."""
    import docker

    client = docker.from_env()
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(namespace + "/"):
                client.images.remove(tag, noprune=True)


if __name__ == "__main__":
    sys.exit(main())
