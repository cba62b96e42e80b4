"""stepframe's conformance kit for plugin authors: fixtures and reusable test suites.

Use it as a pytest plugin, in the ``conftest.py`` at the root of your tests::

    pytest_plugins = ["stepframe.testing"]

which gives the fixtures `stepframe_plugins` (an isolated plugin manager),
`stepframe_plugin` (one plugin object registered for one test), `stepframe_project` (a
temporary project with a local artifact store) and `small_pipeline` (a two-step pipeline
whose second step runs on the operator you name).  The suites need no plugin line: import
one, subclass it in a ``Test*`` class, point it at your flavor and switch off what your
backend cannot do::

    from stepframe.testing import StepOperatorSuite

    class TestMyOperator(StepOperatorSuite):
        flavor = "my-operator"
        plugin_names = ("my-operator",)   # the entry point(s) to load
        supports_cancel = True

Suites: `StepOperatorSuite`, `ImageBuilderSuite`, `ArtifactStoreSuite`,
`ConnectorSuite`, and `PolicySuite` for plugins that register no flavor and refuse or
wrap (cost policies, tags).  docs/plugins.md describes each test and capability flag.
For command-line tests, `StepframeCli` runs ``stepframe ARGS`` in its own process as a
user does, and `read_until` follows a running command's output.

Importing this module imports pytest and the core, nothing else.  It is not registered
as a pytest entry-point plugin, so it never loads into test runs that did not ask for it.
"""

from __future__ import annotations

from stepframe.testing._cli import StepframeCli, read_until
from stepframe.testing._connector_suite import ConnectorSuite
from stepframe.testing._cutting_proxy import CuttingProxy
from stepframe.testing._fixtures import (
    SmallPipeline,
    TempProject,
    make_plugins,
    small_pipeline,
    stepframe_plugin,
    stepframe_plugins,
    stepframe_project,
)
from stepframe.testing._image_suite import ImageBuilderSuite
from stepframe.testing._jobs import FinishedJob, OperatorHarness
from stepframe.testing._operator_suite import StepOperatorSuite
from stepframe.testing._policy_suite import KIT_CLOUD, KitCloud, KitCloudSettings, PolicySuite
from stepframe.testing._store_suite import ArtifactStoreSuite

__all__ = [
    "KIT_CLOUD",
    "ArtifactStoreSuite",
    "ConnectorSuite",
    "CuttingProxy",
    "FinishedJob",
    "ImageBuilderSuite",
    "KitCloud",
    "KitCloudSettings",
    "OperatorHarness",
    "PolicySuite",
    "SmallPipeline",
    "StepOperatorSuite",
    "StepframeCli",
    "TempProject",
    "make_plugins",
    "read_until",
    "small_pipeline",
    "stepframe_plugin",
    "stepframe_plugins",
    "stepframe_project",
]
