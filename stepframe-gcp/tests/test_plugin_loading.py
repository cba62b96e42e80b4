"""Loading the plugin must stay cheap: no google module, no docker."""

from __future__ import annotations

import json
import subprocess
import sys


def test_loading_the_plugin_imports_no_heavy_library() -> None:
    code = (
        "import json, sys\n"
        "from stepframe import load_plugins\n"
        "plugins = load_plugins()\n"
        "assert 'gcp' in plugins.infos, sorted(plugins.infos)\n"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('google', 'googleapiclient', 'requests', 'docker'))))\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(answer.stdout.strip().splitlines()[-1]) == []


def test_every_gcp_flavor_is_registered() -> None:
    from stepframe import ComponentKind, load_plugins

    plugins = load_plugins()
    for kind, name in [
        (ComponentKind.CONNECTOR, "gcp"),
        (ComponentKind.ARTIFACT_STORE, "gcs"),
        (ComponentKind.CONTAINER_REGISTRY, "artifact-registry"),
        (ComponentKind.STEP_OPERATOR, "vertex"),
    ]:
        assert plugins.flavors.get(kind, name) is not None, (kind, name)
        assert plugins.flavors.provider(kind, name) == "gcp"
    assert plugins.flavors.scheme_provider("gs") == "gcp"


def test_images_for_the_vertex_operator_are_built_for_linux_amd64() -> None:
    """The cloud's machines are x86-64: the builder must not follow an arm64 client."""
    from stepframe import ComponentKind, load_plugins

    flavor = load_plugins().flavors.get(ComponentKind.STEP_OPERATOR, "vertex")
    assert flavor is not None
    assert flavor.image_platform == "linux/amd64"
