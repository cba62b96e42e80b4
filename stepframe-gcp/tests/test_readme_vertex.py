"""The README's "Run a step on Vertex AI" commands, run as written against the test services.

The block is read from stepframe-gcp/README.md itself, so the page cannot drift from what
works.  What differs from a user's machine is outside the commands: ``key.json`` is a key
the loopback token service issued, the bucket is created first on fake-gcs-server (the
README lists it as a prerequisite), and the final ``stepframe run`` of examples/vertex is a
``--dry-run``, as is its local mode (the Vertex AI path itself runs in test_vertex_*).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from _token_service import TokenService
from _vertex_service import VertexService
from conftest import FakeGcs

README = Path(__file__).resolve().parents[1] / "README.md"
ROOT = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    section = README.read_text().split("## Run a step on Vertex AI", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```\n(.*?)```", section, re.DOTALL)
    setup = next(block for block in blocks if "stepframe connector register" in block)
    return [line for line in setup.splitlines() if line.strip()]


def _run(line: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f"set -e\nsource ./vars.sh\n{line}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def test_the_readme_commands_set_up_a_vertex_stack(
    tmp_path: Path, gcs: FakeGcs, token_service: TokenService, vertex_service: VertexService
) -> None:
    commands = _readme_commands()
    assert commands[0].startswith("export "), commands[0]
    (tmp_path / "vars.sh").write_text(commands[0] + "\n")
    bucket = re.search(r"BUCKET=(\S+)", commands[0])
    assert bucket
    gcs.create_bucket(bucket.group(1))
    (tmp_path / "key.json").write_text(token_service.new_key())
    shutil.copytree(ROOT / "examples" / "vertex", tmp_path / "examples" / "vertex")
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,  # the conftest's dead proxy and STORAGE_EMULATOR_HOST
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "STEPFRAME_SECRETS_FILE": str(tmp_path / "secrets.json"),
        "STEPFRAME_LOAD_PLUGINS": "gcp,docker",
        # gcloud's endpoint overrides, which verify honours: the test service.
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_AIPLATFORM": vertex_service.url,
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_ARTIFACTREGISTRY": vertex_service.url,
    }

    outputs = {}
    assert commands[-1].startswith("stepframe run "), commands[-1]
    for line in commands[1:-1]:
        done = _run(line.split("  #", 1)[0], tmp_path, env)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        outputs[line] = done.stdout
    dry = _run(commands[-1] + " --dry-run", tmp_path, env)
    local = _run(commands[-1] + " --config examples/vertex/local.toml --dry-run", tmp_path, env)

    assert dry.returncode == 0, f"--dry-run\n{dry.stdout}\n{dry.stderr}"
    assert "train" in dry.stdout and "vertex" in dry.stdout, dry.stdout
    assert local.returncode == 0, f"local --dry-run\n{local.stdout}\n{local.stderr}"
    verify = next(out for line, out in outputs.items() if "connector verify" in line)
    assert "trainer@test-project.iam.gserviceaccount.com (project my-project)" in verify, verify
    assert f"gs://{bucket.group(1)}/stepframe: listable" in verify, verify
    assert "vertex ai projects/my-project/locations/europe-west4: custom jobs listable" in verify
    config = (tmp_path / "stepframe.toml").read_text()
    assert "PRIVATE KEY" not in config and 'service_account_key = "gcp-key"' in config
