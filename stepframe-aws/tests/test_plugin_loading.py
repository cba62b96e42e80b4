"""Loading the plugin must stay cheap: no boto3, botocore, docker or SageMaker SDK."""

from __future__ import annotations

import json
import subprocess
import sys


def test_loading_the_plugin_imports_no_heavy_library() -> None:
    code = (
        "import json, sys\n"
        "from stepframe import load_plugins\n"
        "plugins = load_plugins()\n"
        "assert 'aws' in plugins.infos, sorted(plugins.infos)\n"
        "print(json.dumps(sorted(m for m in ('boto3', 'botocore', 'docker', 'sagemaker')"
        " if m in sys.modules)))\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(answer.stdout.strip().splitlines()[-1]) == []


def test_every_aws_flavor_is_registered() -> None:
    from stepframe import ComponentKind, load_plugins

    flavors = load_plugins().flavors
    for kind, name in [
        (ComponentKind.CONNECTOR, "aws"),
        (ComponentKind.ARTIFACT_STORE, "s3"),
        (ComponentKind.CONTAINER_REGISTRY, "ecr"),
        (ComponentKind.STEP_OPERATOR, "sagemaker"),
    ]:
        flavor = flavors.get(kind, name)
        assert flavor is not None, (kind, name)
        assert flavors.provider(kind, name) == "aws"
