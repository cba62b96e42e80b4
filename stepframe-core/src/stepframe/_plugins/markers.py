"""The pluggy markers, kept apart so hook specs and plugins can import them cheaply."""

from __future__ import annotations

import pluggy

PROJECT_NAME = "stepframe"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
