"""AzureML's REST models as the judge of the bodies stepframe sends.

The calls name API version 2024-10-01 (`config.API_VERSION`, the newest stable version
whose command jobs take ``queueSettings``, which ``job_tier`` needs).  The bodies are judged
against that version's description, built from two published sources:

- the models azure-mgmt-machinelearningservices generates from AzureML's REST
  specification for API version 2023-04-01 (the newest its releases carry): each class's
  ``_attribute_map`` names its wire fields and their types, ``_validation`` their rules
  (required, read-only, pattern, min/max length and value), ``_subtype_map`` the
  discriminators (``jobType``, ``identityType``, ``distributionType``), and the docstrings
  name each enum-valued field's enum;
- `API_2024_10_01_ADDITIONS`: what the stable 2024-10-01 specification
  (``specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/
  stable/2024-10-01/mfe.json``, as Azure's bicep-types-az repository renders it in
  ``generated/machinelearningservices/microsoft.machinelearningservices/2024-10-01/types.md``)
  adds to the models a command job body or an environment version body reaches:
  ``queueSettings`` (QueueSettings: ``jobTier`` only, enum JobTier) and
  ``notificationSetting`` (NotificationSetting: ``emailOn``, ``emails``, ``webhooks``).
  Nothing those bodies reach was removed or narrowed between the two versions (CommandJob,
  JobBaseProperties, JobResourceConfiguration, CommandJobLimits, PyTorch, the identity
  configurations and EnvironmentVersionProperties list the same fields and rules).  A
  job priority (``queueSettings.priority``) is a preview API field, absent from 2024-10-01:
  a body carrying it is refused here as AzureML would refuse it.

`body_problems` walks a body against them: an unknown or misspelled field (with the field
it was probably meant to be), a wrong type, a value out of range or off its pattern, a
value outside its enum, a missing required field, a read-only field.  The rules are
applied with the library's own functions (``Serializer.validation``; patterns unanchored,
as JSON Schema reads them) and the body is then deserialized by the library's
``Deserializer``, as the client would.  The tests' job service judges bodies with this
same module.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["API_2024_10_01_ADDITIONS", "body_problems", "enum_values", "model_classes"]

#: The fields API version 2024-10-01 adds to the generated (2023-04-01) CommandJob, each
#: with the model of its value (transcribed in `_models_2024_10_01`).
API_2024_10_01_ADDITIONS = {
    "queueSettings": "QueueSettings",
    "notificationSetting": "NotificationSetting",
}
_MODELS_PACKAGE = "azure.mgmt.machinelearningservices.models"
_ENUM_DOC = re.compile(
    r":vartype (\w+): (?:str or )?~azure\.mgmt\.machinelearningservices\.models\.(\w+)\s*$",
    re.MULTILINE,
)
# Rules of _validation that are not constraints on a present value.
_NOT_CONSTRAINTS = frozenset({"required", "readonly", "constant"})


@functools.cache
def model_classes() -> dict[str, Any]:
    """The generated model and enum classes by name, with API version 2024-10-01's
    additions (`API_2024_10_01_ADDITIONS`)."""
    from azure.mgmt.machinelearningservices import models

    classes: dict[str, Any] = {
        name: value for name, value in vars(models).items() if isinstance(value, type)
    }
    added = _models_2024_10_01()
    base = classes["CommandJob"]
    command_job = type(
        "CommandJob",
        (base,),
        {
            "__doc__": base.__doc__,
            "_attribute_map": {
                **base._attribute_map,
                "queue_settings": {"key": "queueSettings", "type": "QueueSettings"},
                "notification_setting": {
                    "key": "notificationSetting",
                    "type": "NotificationSetting",
                },
            },
        },
    )
    classes.update(added, CommandJob=command_job)
    return classes


def _models_2024_10_01() -> dict[str, Any]:
    """The models 2024-10-01 adds, in the generated models' own layout, transcribed from
    its description (see the module docstring): QueueSettings holds ``jobTier`` and
    nothing else (no ``priority``: a preview API field)."""
    import enum

    from azure.core import CaseInsensitiveEnumMeta
    from azure.mgmt.machinelearningservices._serialization import Model

    class JobTier(str, enum.Enum, metaclass=CaseInsensitiveEnumMeta):
        """Enum to determine the job tier."""

        NULL = "Null"
        SPOT = "Spot"
        BASIC = "Basic"
        STANDARD = "Standard"
        PREMIUM = "Premium"

    class EmailNotificationEnableType(str, enum.Enum, metaclass=CaseInsensitiveEnumMeta):
        """Enum to determine the email notification type."""

        JOB_COMPLETED = "JobCompleted"
        JOB_FAILED = "JobFailed"
        JOB_CANCELLED = "JobCancelled"

    class QueueSettings(Model):
        """Queue settings of a job.

        :ivar job_tier: Controls the compute job tier.
        :vartype job_tier: str or ~azure.mgmt.machinelearningservices.models.JobTier
        """

        _validation: dict[str, Any] = {}  # noqa: RUF012
        _attribute_map = {"job_tier": {"key": "jobTier", "type": "str"}}  # noqa: RUF012

    class Webhook(Model):
        """Webhook base (discriminator ``webhookType``).

        :ivar webhook_type: Specifies the type of service to send a callback.
        :ivar event_type: Send callback on a specified notification event.
        """

        _validation = {"webhook_type": {"required": True}}  # noqa: RUF012
        _attribute_map = {  # noqa: RUF012
            "webhook_type": {"key": "webhookType", "type": "str"},
            "event_type": {"key": "eventType", "type": "str"},
        }
        _subtype_map = {"webhook_type": {"AzureDevOps": "AzureDevOpsWebhook"}}  # noqa: RUF012

    class AzureDevOpsWebhook(Webhook):
        """Webhook details specific for Azure DevOps (as generated subtypes, it has no
        ``_subtype_map`` of its own)."""

    class NotificationSetting(Model):
        """Configuration for notification.

        :ivar email_on: Send email notification to user on specified notification type.
        :ivar emails: The email recipient list (499 characters in total, comma-joined).
        :ivar webhooks: Send webhook callback to a service, by a name of the user's.
        """

        _validation: dict[str, Any] = {}  # noqa: RUF012
        _attribute_map = {  # noqa: RUF012
            "email_on": {"key": "emailOn", "type": "[str]"},
            "emails": {"key": "emails", "type": "[str]"},
            "webhooks": {"key": "webhooks", "type": "{Webhook}"},
        }

    return {
        "JobTier": JobTier,
        "EmailNotificationEnableType": EmailNotificationEnableType,
        "QueueSettings": QueueSettings,
        "Webhook": Webhook,
        "AzureDevOpsWebhook": AzureDevOpsWebhook,
        "NotificationSetting": NotificationSetting,
    }


def enum_values(model: str, attribute: str) -> tuple[str, ...]:
    """The values of the enum the model's docstring names for ``attribute`` (empty when
    the field is not enum-valued)."""
    enum_class = _enums(model_classes()[model]).get(attribute)
    return tuple(str(member.value) for member in enum_class) if enum_class else ()


def body_problems(body: Any, model: str = "JobBase") -> list[str]:
    """What AzureML would refuse in ``body`` (a request body of ``model``), one line each,
    naming the field by its path (``properties.resources.shmSize``)."""
    from azure.core.exceptions import DeserializationError
    from azure.mgmt.machinelearningservices._serialization import Deserializer

    classes = model_classes()
    problems: list[str] = []
    _check(body, model, "", problems, classes)
    if not problems:
        try:
            # A copy: the Deserializer pops each discriminator out of the data it reads.
            Deserializer(classes)(model, copy.deepcopy(body))
        except DeserializationError as error:
            problems.append(f"the body does not deserialize: {error}")
    return problems


# ---- the walk ---------------------------------------------------------------------------


def _check(value: Any, type_name: str, path: str, problems: list[str], classes: Any) -> None:
    where = path or "body"
    if type_name.startswith("[") and type_name.endswith("]"):
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, not {_kind(value)}")
            return
        for index, item in enumerate(value):
            _check(item, type_name[1:-1], f"{path}[{index}]", problems, classes)
        return
    if type_name.startswith("{") and type_name.endswith("}"):
        if not isinstance(value, dict):
            problems.append(f"{where}: expected an object, not {_kind(value)}")
            return
        for key, item in value.items():
            _check(item, type_name[1:-1], f"{path}.{key}" if path else key, problems, classes)
        return
    model = classes.get(type_name)
    if model is not None and hasattr(model, "_attribute_map"):
        _check_model(value, model, path, problems, classes)
        return
    expected = _SCALARS.get(type_name)
    if expected is not None and not expected[1](value):
        problems.append(f"{where}: expected {expected[0]}, not {_kind(value)} {value!r}")


def _check_model(
    value: Any, model: Any, path: str, problems: list[str], classes: Mapping[str, Any]
) -> None:
    where = path or "body"
    if not isinstance(value, dict):
        problems.append(f"{where}: expected an object, not {_kind(value)}")
        return
    model = _subtype(value, model, path, problems, classes)
    if model is None:
        return
    by_key = {spec["key"]: name for name, spec in model._attribute_map.items()}
    for key in value:
        if key not in by_key:
            problems.append(
                f"{_join(path, key)}: unknown field of {model.__name__}{_hint(key, by_key)}"
            )
        elif model._validation.get(by_key[key], {}).get("readonly"):
            problems.append(f"{_join(path, key)}: read-only (AzureML sets it); leave it out")
    enums = _enums(model)
    for name, spec in model._attribute_map.items():
        key = spec["key"]
        rules = model._validation.get(name, {})
        if rules.get("readonly"):
            continue
        field_path = _join(path, key)
        if value.get(key) is None:
            if rules.get("required"):
                problems.append(f"{field_path}: required by {model.__name__}")
            continue
        before = len(problems)
        _check(value[key], spec["type"], field_path, problems, classes)
        if len(problems) > before:
            continue
        problems += _constraint_problems(value[key], rules, field_path)
        enum_class = enums.get(name)
        if enum_class is not None and spec["type"] == "str":
            allowed = [str(member.value) for member in enum_class]
            if str(value[key]).lower() not in {a.lower() for a in allowed}:
                problems.append(
                    f"{field_path}: {value[key]!r} is not one of {', '.join(allowed)}"
                    f"{_hint(str(value[key]), {a: a for a in allowed})}"
                )


def _subtype(
    value: dict[str, Any], model: Any, path: str, problems: list[str], classes: Mapping[str, Any]
) -> Any:
    """The concrete model a polymorphic body names by its discriminator."""
    subtypes = model.__dict__.get("_subtype_map") or {}
    for attribute, choices in subtypes.items():
        key = model._attribute_map[attribute]["key"]
        named = value.get(key)
        if named is None:
            problems.append(
                f"{_join(path, key)}: required by {model.__name__} (one of {', '.join(choices)})"
            )
            return None
        if named not in choices:
            problems.append(
                f"{_join(path, key)}: {named!r} is not one of {', '.join(choices)}"
                f"{_hint(str(named), {c: c for c in choices})}"
            )
            return None
        return classes[choices[named]]
    return model


def _constraint_problems(value: Any, rules: Mapping[str, Any], path: str) -> list[str]:
    from azure.mgmt.machinelearningservices._serialization import Serializer

    checks: dict[str, Any] = Serializer.validation
    problems = []
    for rule, bound in rules.items():
        if rule in _NOT_CONSTRAINTS or rule not in checks:
            continue
        if rule == "pattern":
            # The specification's patterns are JSON Schema's, unanchored ("contains a
            # match"); the library's own check anchors them at the start (re.match).
            if not isinstance(value, str) or re.search(bound, value) is None:
                problems.append(f"{path}: {value!r} does not match the pattern {bound!r}")
            continue
        if checks[rule](value, bound):
            problems.append(f"{path}: {value!r} breaks {_RULE_WORDS.get(rule, rule)} {bound!r}")
    return problems


_RULE_WORDS = {
    "min_length": "the minimum length",
    "max_length": "the maximum length",
    "minimum": "the minimum",
    "maximum": "the maximum",
    "minimum_ex": "the exclusive minimum",
    "maximum_ex": "the exclusive maximum",
    "min_items": "the minimum item count",
    "max_items": "the maximum item count",
    "pattern": "the pattern",
    "unique": "uniqueness",
    "multiple": "being a multiple of",
}


@functools.cache
def _enums(model: Any) -> dict[str, Any]:
    """Attribute name to enum class, from the generated docstrings of ``model`` and its
    bases (``:vartype job_tier: str or ~azure.mgmt...models.JobTier``)."""
    classes = model_classes()
    found: dict[str, Any] = {}
    for klass in reversed(model.__mro__):
        for attribute, name in _ENUM_DOC.findall(klass.__doc__ or ""):
            candidate = classes.get(name)
            if candidate is not None and hasattr(candidate, "__members__"):
                found[attribute] = candidate
    return found


def _isodate() -> Any:
    import importlib

    return importlib.import_module("isodate")  # untyped: no py.typed


def _is_duration(value: Any) -> bool:
    isodate = _isodate()

    if not isinstance(value, str):
        return False
    try:
        isodate.parse_duration(value)
    except (ValueError, isodate.ISO8601Error):
        return False
    return True


def _is_datetime(value: Any) -> bool:
    isodate = _isodate()

    if not isinstance(value, str):
        return False
    try:
        isodate.parse_datetime(value)
    except (ValueError, isodate.ISO8601Error):
        return False
    return True


_SCALARS: dict[str, tuple[str, Any]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "long": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "duration": ("an ISO 8601 duration (PT1H30M)", _is_duration),
    "iso-8601": ("an ISO 8601 date and time", _is_datetime),
}


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _hint(word: str, known: Mapping[str, Any]) -> str:
    """`` (did you mean X?)`` for the known key closest to ``word``: snake_case and case
    differences count for nothing."""

    def folded(text: str) -> str:
        return text.replace("_", "").replace("-", "").lower()

    by_fold = {folded(key): key for key in known}
    if folded(word) in by_fold:
        return f" (did you mean {by_fold[folded(word)]}?)"
    close = difflib.get_close_matches(folded(word), list(by_fold), n=1, cutoff=0.75)
    return f" (did you mean {by_fold[close[0]]}?)" if close else ""
