"""The README's "Run a step on Azure Machine Learning" commands, run as written against the
test services.

The block is read from the repository's README.md itself, so the page cannot drift from
what works.  What differs from a user's machine is outside the commands: the tenant, the
service principal (with the README's ids and the secret in ``sp-secret.txt``), the
workspace, the blob container and the registry exist on the loopback Azure service
(_token_service.py), which the CLI reaches by Azure's own names through its proxy, with
the roles the README lists assigned; and the final ``stepframe run`` of examples/azureml
is a ``--dry-run``, as is its local mode (the AzureML path itself runs end to end in
test_azureml_cli_lifecycle.py, local mode in test_azureml_local_mode.py).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from _token_service import Application, AzureService

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECRET = "readme-client-secret-0123456789"


def _readme_commands() -> list[str]:
    text = README.read_text()
    section = text.split("## Run a step on Azure Machine Learning", 1)[1].split("\n## ", 1)[0]
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


def test_the_readme_commands_set_up_an_azureml_stack(tmp_path: Path, azure: AzureService) -> None:
    commands = _readme_commands()
    assert commands[0].startswith("export "), commands[0]
    assert commands[-1].startswith("stepframe run "), commands[-1]
    (tmp_path / "vars.sh").write_text(commands[0] + "\n")
    names = dict(re.findall(r"([A-Z_]+)=(\S+)", commands[0]))
    # What the README lists as already there, with the roles it names.
    azure.tenants.add(names["TENANT"])
    principal = Application(names["TENANT"], names["CLIENT_ID"], SECRET)
    azure.applications[principal.client_id] = principal
    workspace = (
        f"/subscriptions/{names['SUBSCRIPTION']}/resourceGroups/{names['RESOURCE_GROUP']}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{names['WORKSPACE']}"
    )
    azure.workspaces.add(workspace)
    azure.containers.add(f"{names['ACCOUNT']}/stepframe")
    azure.registries.add(names["REGISTRY"])
    azure.assign(principal.object_id, "AzureML Data Scientist", workspace)
    azure.assign(
        principal.object_id, "Storage Blob Data Contributor", f"{names['ACCOUNT']}/stepframe"
    )
    azure.assign(principal.object_id, "AcrPush", names["REGISTRY"])
    (tmp_path / "sp-secret.txt").write_text(SECRET + "\n")
    shutil.copytree(ROOT / "examples" / "azureml", tmp_path / "examples" / "azureml")
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,  # the conftest's dead proxy and empty Azure CLI folder
        **azure.environment,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "STEPFRAME_SECRETS_FILE": str(tmp_path / "secrets.json"),
        "STEPFRAME_LOAD_PLUGINS": "azure,docker",
    }
    env.pop("AZURE_STORAGE_CONNECTION_STRING", None)

    outputs = {}
    for line in commands[1:-1]:
        done = _run(line.split("  #", 1)[0], tmp_path, env)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        outputs[line] = done.stdout
    dry = _run(commands[-1] + " --dry-run", tmp_path, env)
    local = _run(commands[-1] + " --config examples/azureml/local.toml --dry-run", tmp_path, env)

    assert dry.returncode == 0, f"--dry-run\n{dry.stdout}\n{dry.stderr}"
    assert "train" in dry.stdout and "azureml" in dry.stdout, dry.stdout
    assert local.returncode == 0, f"local --dry-run\n{local.stdout}\n{local.stderr}"
    verify = next(out for line, out in outputs.items() if "connector verify" in line)
    assert f"service principal {principal.client_id} (object id {principal.object_id})" in verify
    assert f"blob container az://{names['ACCOUNT']}/stepframe/artifacts: listable" in verify
    assert f"container registry {names['REGISTRY']}.azurecr.io/steps: login works" in verify
    assert f"azureml workspace {names['WORKSPACE']}: readable, jobs may be submitted" in verify
    config = (tmp_path / "stepframe.toml").read_text()
    assert SECRET not in config and 'client_secret = "azure-sp"' in config
    assert all(SECRET not in out for out in outputs.values())
