"""``stepframe secret ...`` given a value where a name (or nothing) belongs: refused in
one line, exit 2, and the value appears in no output and no file."""

from __future__ import annotations

import uuid

import pytest

EXIT_USAGE = 2


def a_value() -> str:
    # Shaped like a name on purpose: a pasted key often is one.
    return f"sk-live-{uuid.uuid4().hex}"


def refused(result, value: str) -> str:
    everything = result.stdout + result.stderr
    assert value not in everything, everything
    assert result.returncode == EXIT_USAGE, everything
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("stepframe: error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("secret", "set", "aws-key", "{value}"),  # the value after the name
        ("secret", "set", "aws-key", "--value={value}"),  # as an option
        ("secret", "set", "aws-key", "--value", "{value}"),
        ("secret", "set", "aws-key", "-{value}"),
        ("secret", "delete", "aws-key", "{value}"),
        ("secret", "list", "{value}"),
    ],
)
def test_an_argument_after_the_name_is_refused_without_being_echoed(
    cli, _user_config, args
) -> None:
    value = a_value()
    argv = [a.replace("{value}", value) for a in args]
    message = refused(cli(*argv, input="typed\n"), value)
    assert f"`stepframe secret {argv[1]}` takes" in message
    assert "from a prompt or stdin" in message
    assert not _user_config.exists()


@pytest.mark.parametrize(
    "name",
    [
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",  # a pasted AWS secret key
        "sk live " + uuid.uuid4().hex,
        "x" * 129 + uuid.uuid4().hex,
        "-" + uuid.uuid4().hex,
    ],
    # Fixed ids: pytest-xdist's workers must collect the same names.
    ids=["aws-secret-key", "with-spaces", "too-long", "leading-dash"],
)
def test_an_invalid_name_is_refused_without_being_echoed(cli, _user_config, name) -> None:
    message = refused(cli("secret", "set", name, input="typed\n"), name)
    assert "secret name given is invalid" in message
    assert "letters, digits" in message
    assert not _user_config.exists()
    refused(cli("secret", "delete", name), name)


def test_deleting_a_name_that_is_not_stored_does_not_echo_it(cli, _user_config) -> None:
    assert cli("secret", "set", "kept", input="v\n").returncode == 0
    before = _user_config.read_bytes()
    value = a_value()  # a valid name, so perhaps a value pasted in the wrong place
    message = refused(cli("secret", "delete", value), value)
    assert "see `stepframe secret list`" in message
    assert _user_config.read_bytes() == before


def test_a_value_given_instead_of_a_command_is_not_echoed(cli, _user_config) -> None:
    value = a_value()
    result = cli("secret", value)
    assert result.returncode == EXIT_USAGE
    assert value not in result.stdout + result.stderr
    assert "no such command (not shown" in result.stderr and "delete, list, set" in result.stderr
    assert not _user_config.exists()
