"""Names that two sides of a process boundary must agree on are defined once.

`STORE_CREDENTIALS_FD_ENV` names the pipe a local job reads its store credentials from:
the operator's side (`stepframe._builtin.local_zygote`) sets it and the job's side
(`stepframe.entrypoint`) reads it.  Two definitions could drift apart, and a job would
then run without its credentials.
"""

from __future__ import annotations

import ast
from pathlib import Path

import stepframe
from stepframe import entrypoint
from stepframe._builtin import local_zygote


def _assigns(path: Path, name: str) -> bool:
    return any(
        isinstance(node, ast.Assign | ast.AnnAssign)
        and any(
            isinstance(target, ast.Name) and target.id == name
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        )
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
    )


def test_the_store_credentials_pipe_variable_is_defined_once() -> None:
    package = Path(stepframe.__file__).parent
    defined = [
        path.relative_to(package).as_posix()
        for path in sorted(package.rglob("*.py"))
        if _assigns(path, "STORE_CREDENTIALS_FD_ENV")
    ]
    assert defined == ["_builtin/local_zygote.py"]
    assert entrypoint.STORE_CREDENTIALS_FD_ENV is local_zygote.STORE_CREDENTIALS_FD_ENV
