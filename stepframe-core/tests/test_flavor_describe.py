"""Discoverable flavors (issue 11, section 5): ``stepframe flavor describe NAME`` shows a
flavor's config and settings fields with type, default and help and the plugin providing
it; ``<kind> register NAME --flavor F --help`` lists the same options; an unknown option
names the nearest valid one and lists them all.  The flavor is a third-party one, loaded
through its entry point by the CLI process."""

from __future__ import annotations


def test_flavor_describe_shows_fields_defaults_help_and_the_plugin(project, cli, acme) -> None:
    result = cli("flavor", "describe", "acme", env=acme.env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "step operator flavor 'acme', from plugin 'acme' (distribution stepframe-acme)" in out
    assert "acme batch jobs (here: local processes)" in out
    assert "  --project  (str, required)" in out
    assert "  --max-workers  (int, default 2)" in out
    assert "  --zones  (list[str], default [])" in out
    assert "settings (" in out and "  spot  (bool, default False)" in out


def test_help_and_docstring_lines_of_a_core_flavor(project, cli) -> None:
    result = cli("flavor", "describe", "local", "--kind", "artifact_store")
    assert result.returncode == 0, result.stderr
    assert "from plugin 'local-artifact-store' (distribution stepframe-core)" in result.stdout
    assert "  --path  (str | None, default None)" in result.stdout
    assert "the store's directory, absolute or relative to the project root" in result.stdout
    assert "URI schemes: file" in result.stdout
    assert "step operator" not in result.stdout  # --kind picked one of the two 'local's


def test_an_unknown_flavor_is_one_line(project, cli) -> None:
    result = cli("flavor", "describe", "sagemkaer")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "no installed plugin provides a flavor named 'sagemkaer'" in result.stderr


def test_register_help_lists_the_flavors_options(project, cli, acme) -> None:
    result = cli("step-operator", "register", "batch", "--flavor", "acme", "--help", env=acme.env)
    assert result.returncode == 0, result.stderr
    assert "Options of step operator flavor 'acme':" in result.stdout
    assert "--max-workers  (int, default 2)" in result.stdout
    plain = cli("step-operator", "register", "--help", env=acme.env)
    assert "Add --flavor F to --help" in plain.stdout


def test_an_unknown_option_suggests_the_nearest_and_lists_the_valid_ones(
    project, cli, acme
) -> None:
    result = cli(
        "step-operator", "register", "batch", "-f", "acme", "--project", "p",
        "--max-worker", "3", env=acme.env,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert (
        "step_operators.batch: unknown key(s) max_worker (did you mean --max-workers?)"
        in result.stderr
    )
    assert "valid options: --project, --max-workers, --spot, --zones" in result.stderr
    assert not (project.root / "stepframe.toml").exists()


def test_an_operator_s_image_platform_is_shown() -> None:
    """SageMaker runs only linux/amd64 images: the description says what the image is
    built for, and says nothing where the backend does not care."""
    from stepframe import ComponentKind, Flavor
    from stepframe._plugins.describe import describe_flavor

    def describe(image_platform: str | None = None) -> str:
        flavor = Flavor(
            ComponentKind.STEP_OPERATOR, "batch", needs_image=True, image_platform=image_platform
        )
        return describe_flavor(flavor, "batch", None)

    assert "runs steps in an image: yes, built for linux/amd64;" in describe(
        image_platform="linux/amd64"
    )
    assert "runs steps in an image: yes; " in describe()
