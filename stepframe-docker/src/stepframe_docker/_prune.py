"""``stepframe image prune``: remove a project's old image tags from the local engine.

Every content change of a project makes a new tag (see `_plan`), and the engine keeps
them all.  A project's tags are those of repositories named after it (the code root's
folder, or ``image_name``) under any registry, or ``stepframe-local/``, whose tag is a
content hash; the newest ``keep`` of each repository stay.  Layers that other images
still use stay too (the engine removes only what nothing references).  Nothing is
removed from a registry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    import click
    import docker

__all__ = ["ImageTag", "command", "project_tags", "prune"]

# The builder's tags: the first 40 hex digits of the content hash (_plan.TAG_LENGTH).
_CONTENT_TAG = re.compile(r"[0-9a-f]{40}")


@attrs.frozen
class ImageTag:
    """One tag of a project's image on the engine."""

    repository: str
    tag: str
    image_id: str
    created: int  # nanoseconds since the epoch: builds a second apart still sort

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


def _is_project_repository(repository: str, names: Iterable[str]) -> bool:
    return any(repository == name or repository.endswith(f"/{name}") for name in names)


def _created_ns(text: str) -> int:
    """An engine's RFC 3339 time (nanoseconds, trailing zeros trimmed) in nanoseconds."""
    stamp, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(seconds.timestamp()) * 10**9 + int((fraction + "0" * 9)[:9])


def project_tags(client: docker.DockerClient, names: Iterable[str]) -> dict[str, list[ImageTag]]:
    """The content-hash tags of the repositories named ``names``, newest first."""
    from stepframe_docker._engine import inspect_image

    wanted = list(names)
    found: dict[str, list[ImageTag]] = {}
    for image in client.api.images():
        ours = []
        for reference in image.get("RepoTags") or []:
            repository, _, tag = reference.rpartition(":")
            if _CONTENT_TAG.fullmatch(tag) and _is_project_repository(repository, wanted):
                ours.append((repository, tag))
        if not ours:
            continue
        created = _created_ns(str(inspect_image(client, str(image["Id"]))["Created"]))
        for repository, tag in ours:
            found.setdefault(repository, []).append(
                ImageTag(repository, tag, str(image["Id"]), created)
            )
    for tags in found.values():
        tags.sort(key=lambda t: (t.created, t.tag), reverse=True)
    return dict(sorted(found.items()))


@attrs.frozen
class Pruned:
    removed: tuple[ImageTag, ...]
    kept: tuple[ImageTag, ...]
    in_use: tuple[tuple[ImageTag, str], ...]


def prune(
    client: docker.DockerClient,
    names: Iterable[str],
    keep: int,
    *,
    dry_run: bool = False,
    say: Callable[[str], None] = lambda line: None,
) -> Pruned:
    """Remove all but the newest ``keep`` tags of each of the project's repositories."""
    from docker.errors import APIError, NotFound

    removed: list[ImageTag] = []
    kept: list[ImageTag] = []
    in_use: list[tuple[ImageTag, str]] = []
    for tags in project_tags(client, names).values():
        kept += tags[:keep]
        for old in tags[keep:]:
            when = datetime.fromtimestamp(old.created / 10**9, timezone.utc)
            when_text = when.strftime("%Y-%m-%d %H:%M")
            if dry_run:
                say(f"would remove {old.reference} (built {when_text} UTC)")
                removed.append(old)
                continue
            try:
                client.api.remove_image(old.reference)
            except NotFound:
                continue  # removed meanwhile
            except APIError as error:
                reason = str(getattr(error, "explanation", None) or error)
                in_use.append((old, reason))
                say(f"kept {old.reference}: {reason}")
                continue
            removed.append(old)
            say(f"removed {old.reference} (built {when_text} UTC)")
    return Pruned(tuple(removed), tuple(kept), tuple(in_use))


def command() -> click.Group:
    """The ``image`` command group (click is imported only when the CLI asks)."""
    import click

    @click.group("image")
    def image() -> None:
        """Images the docker image builder made."""

    @image.command("prune")
    @click.option(
        "--keep",
        type=click.IntRange(min=0),
        default=3,
        show_default=True,
        help="How many of the newest tags of each repository to keep.",
    )
    @click.option(
        "--name",
        "names",
        multiple=True,
        help="The image name (settings docker.image_name); default: this folder's name.",
    )
    @click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
    @click.option(
        "--docker-host", default=None, help="The engine (default: DOCKER_HOST or the socket)."
    )
    def prune_command(
        keep: int, names: tuple[str, ...], dry_run: bool, docker_host: str | None
    ) -> None:
        """Remove this project's old image tags from the local Docker engine."""
        from stepframe_docker._engine import client_for, engine_error
        from stepframe_docker._errors import DockerError
        from stepframe_docker._plan import image_name
        from stepframe_docker._settings import DockerSettings

        wanted = list(names) or [image_name(DockerSettings(), Path.cwd())]
        try:
            client = client_for(docker_host)
            result = prune(client, wanted, keep, dry_run=dry_run, say=click.echo)
        except DockerError as error:
            raise click.ClickException(str(error)) from None
        except (ConnectionError, OSError) as error:
            raise click.ClickException(str(engine_error(error, docker_host))) from None
        verb = "would remove" if dry_run else "removed"
        click.echo(
            f"{verb} {len(result.removed)} tag(s) of {', '.join(wanted)}; kept "
            f"{len(result.kept) + len(result.in_use)} (the newest {keep} of each repository"
            f"{', and those in use' if result.in_use else ''})"
        )

    return image
