"""Import every module of the installed first-party distributions: each one's imports are
declared dependencies.  `nox -s wheels` runs it in the fresh environment before any test
tool goes in (pytest brings packaging, moto brings boto3...), so a dependency a
distribution imports but does not declare fails here instead of on a user's machine.

A module may import what only an extra of its distribution brings (stepframe-aws's
``local`` extra: the SageMaker SDK); such a module is left out when that extra is missing.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
from importlib import metadata

# Standard library only: a third-party import here would hide the very dependency it should
# find missing.
REQUIREMENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _extras_only(distribution: metadata.Distribution) -> set[str]:
    """Import names of the requirements only an extra brings (their distribution names,
    normalised the way import names usually are)."""
    names = set()
    for line in distribution.requires or ():
        marker = line.partition(";")[2]
        found = REQUIREMENT_NAME.match(line)
        if found and re.search(r"\bextra\s*==", marker):
            names.add(re.sub(r"[-_.]+", "_", found.group()).lower())
    return names


def main() -> int:
    problems = []
    count = 0
    for distribution in metadata.distributions():
        if not distribution.metadata["Name"].startswith("stepframe-"):
            continue
        optional = _extras_only(distribution)
        top_level = {
            str(file).split("/")[0]
            for file in distribution.files or ()
            if str(file).endswith("/__init__.py") and str(file).count("/") == 1
        }
        for package in sorted(top_level):
            root = importlib.import_module(package)
            for module in pkgutil.walk_packages(root.__path__, f"{package}."):
                if module.name.endswith(".__main__"):  # runs the CLI when imported
                    continue
                try:
                    importlib.import_module(module.name)
                    count += 1
                except ModuleNotFoundError as error:
                    missing = (error.name or "").split(".")[0]
                    if missing not in optional:
                        problems.append(
                            f"{module.name} imports {missing}, which "
                            f"{distribution.metadata['Name']} does not declare"
                        )
    for problem in problems:
        print(f"import_everything: {problem}", file=sys.stderr)
    print(f"import_everything: {count} modules imported, {len(problems)} problems")
    if count == 0:
        print("import_everything: no stepframe module installed (editable installs are not seen)")
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
