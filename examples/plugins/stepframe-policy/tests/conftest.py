"""The plugin's tests use stepframe's conformance kit: its fixtures come from here."""

pytest_plugins = ["stepframe.testing"]
