"""The inner sessions the kit's tests run: a suite of `stepframe.testing` over one backend
of kit_backends.py, as a test file of its own in a pytester folder, so that a suite
failing there is an outcome to check rather than a failure of this run.

Handed out as the ``inner_kit`` fixture (this folder's tests ask for it), not imported:
the tests run under ``--import-mode=importlib``.
"""

from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path

import pytest

BACKENDS = Path(__file__).with_name("kit_backends.py")

# pytester forgets the modules a test imported (it restores sys.modules as it was when
# the test began), and numpy refuses to be imported a second time in a process: import
# it once, before any of this folder's tests, so every inner run finds it loaded (the
# store suite's numpy round trips).
with contextlib.suppress(ImportError):
    import numpy  # noqa: F401

HEADER = """
import pytest

import kit_backends as kb
from stepframe import Component, ComponentKind
from stepframe import SecretRef
from stepframe.testing import (
    ArtifactStoreSuite,
    ConnectorSuite,
    ImageBuilderSuite,
    PolicySuite,
    StepOperatorSuite,
)
"""

OPERATOR = """
class TestOperator(StepOperatorSuite):
    flavor = kb.{backend}.flavor
    plugin_names = ()
    extra_plugins = (kb.{backend}(),)
    max_job_name_length = 40
    sleep_seconds = 2.5  # it stops at once when it works; keep the inner runs short
    # A backend that never ends a job fails within these (one whose failure is waiting
    # them out says how long is enough).
    job_timeout = getattr(kb.{backend}, "job_timeout", 30.0)
    cancel_timeout = getattr(kb.{backend}, "cancel_timeout", 20.0)
    supports_find_job = getattr(kb.{backend}, "supports_find_job", False)
"""

STORE = """
class TestStore(ArtifactStoreSuite):
    scheme = kb.SCHEME
    plugin_names = ()
    extra_plugins = (kb.{backend}(),)
    large_file_bytes = 24 << 20
    max_stream_memory_bytes = 8 << 20

    def store_uri(self, tmp_path):
        return f"kitdir://{{tmp_path}}/store"

    def corrupt(self, store, uri):
        kb.corrupt_kitdir(uri)
"""

BUILDER = """
class TestBuilder(ImageBuilderSuite):
    flavor = kb.{backend}.flavor
    plugin_names = ()
    extra_plugins = (kb.{backend}(),)

    def count_builds(self, plugins, builder):
        return self.extra_plugins[0].builds
"""

CONNECTOR = """
class TestConnector(ConnectorSuite):
    flavor = kb.{backend}.flavor
    plugin_names = ()
    extra_plugins = (kb.{backend}(),)
    resource_kinds = ("generic", "object_store")
    supports_refresh = True

    @pytest.fixture(autouse=True)
    def token(self, monkeypatch):
        monkeypatch.setenv("KIT_TOKEN", "kit-secret-token-value")

    def make_connector(self, plugins):
        config = kb.TokenConfig(token=SecretRef("env:KIT_TOKEN"))
        return Component(ComponentKind.CONNECTOR, "vault", self.flavor, config=config)

    def secret_values(self):
        return ("kit-secret-token-value",)
"""

POLICY = """
class TestPolicy(PolicySuite):
    extra_plugins = (("kit-policy", kb.{backend}()),)

    def refused_settings(self):
        return {{"instance_type": "huge"}}

    def allowed_settings(self):
        return {{"instance_type": "small"}}
"""

TEMPLATES = {
    "operator": OPERATOR,
    "store": STORE,
    "builder": BUILDER,
    "connector": CONNECTOR,
    "policy": POLICY,
}


class InnerKit:
    """Writes kit_backends.py and a suite into a pytester folder and runs it there."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester

    def suite(self, kind: str, backend: str, *, own_class_name: bool = False) -> str:
        """The ``kind`` suite over ``backend`` (a kit_backends name); with
        ``own_class_name``, its class named after the backend so several fit one file."""
        source = TEMPLATES[kind].format(backend=backend)
        return source.replace("class Test", f"class Test{backend}") if own_class_name else source

    def run(self, source: str, *args: str) -> dict[str, str]:
        """Run ``source`` as a test file in an inner session; each test's outcome by name."""
        pytester = self.pytester
        pytester.syspathinsert()
        pytester.makepyfile(kit_backends=BACKENDS.read_text())
        pytester.makepyfile(test_inner=HEADER + textwrap.dedent(source))
        recorded = pytester.inline_run("-p", "no:cacheprovider", *args)
        assert not recorded.getfailedcollections(), recorded.getfailedcollections()
        outcomes: dict[str, str] = {}
        for report in recorded.getreports("pytest_runtest_logreport"):
            name = report.nodeid.rsplit("::", 1)[-1]
            if report.failed:
                outcomes[name] = f"failed in {report.when}" if report.when != "call" else "failed"
            elif report.skipped:
                outcomes[name] = "skipped"
            elif report.when == "call":
                outcomes.setdefault(name, "passed")
        return outcomes

    @staticmethod
    def failed(outcomes: dict[str, str]) -> set[str]:
        """The tests of an inner run that failed, in any phase."""
        return {name for name, outcome in outcomes.items() if outcome.startswith("failed")}


@pytest.fixture
def inner_kit(pytester: pytest.Pytester) -> InnerKit:
    return InnerKit(pytester)
