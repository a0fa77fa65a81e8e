"""Whether a CloudTrail trail's event selectors record KMS's events: for ``kms_doctor``.

``captures`` reads the selectors of one trail (as ``GetEventSelectors`` returns them)
for one of ``KMS_EVENTS``: basic selectors by ``IncludeManagementEvents``,
``ReadWriteType`` and ``ExcludeManagementEventSources``; advanced selectors by their
field selectors on ``eventCategory``, ``eventSource``, ``eventName`` and ``readOnly``.
A field selector on any other field (``userIdentity.arn``, ``resources.ARN``...) makes
the answer None, "cannot tell", unless another one excludes the event. It reads
selectors only: whether the trail is logging, and whether its logs reach their bucket
and are kept, is for the caller to ask.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# Recorded by one trail or another: True if either does, None if either may.
from confio_kms.ops.iam_evaluator import either

__all__ = ["KMS_EVENTS", "captures", "either", "selector_summary"]

# KMS's events the trail must record: Sign (native keys) and Decrypt (envelope keys,
# through SSM) are read-only management events (CloudTrail logs them with
# "readOnly": true and "managementEvent": true, see
# https://docs.aws.amazon.com/kms/latest/developerguide/ct-decrypt.html and
# https://docs.amazonaws.cn/en_us/kms/latest/developerguide/ct-sign.html), so a trail
# that logs only write events misses every signature. Deleting, disabling and changing
# the key policy are write events. Excluding the event source kms.amazonaws.com
# (ExcludeManagementEventSources, or an advanced selector's eventSource NotEquals)
# drops them all; by default it is empty and KMS events are logged
# (https://docs.aws.amazon.com/awscloudtrail/latest/APIReference/API_EventSelector.html).
# A trail with no custom selectors logs all management events, read and write
# (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/logging-management-events-with-cloudtrail.html).
KMS_EVENTS = (  # (event name, read-only)
    ("Sign", True),
    ("Decrypt", True),
    ("ScheduleKeyDeletion", False),
    ("DisableKey", False),
    ("PutKeyPolicy", False),
)
_KMS_SOURCE = "kms.amazonaws.com"


def captures(selectors: Mapping[str, Any], event: str, read_only: bool) -> bool | None:
    """Whether a logging trail with these selectors records ``event``; None: cannot tell."""
    basic = selectors.get("EventSelectors") or []
    advanced = selectors.get("AdvancedEventSelectors") or []
    if not basic and not advanced:
        return True  # CloudTrail's default: all management events
    if advanced:
        outcomes = [_advanced(s, event, read_only) for s in advanced]
        return True if True in outcomes else (None if None in outcomes else False)
    return any(_basic(s, read_only) for s in basic)


def _basic(selector: Mapping[str, Any], read_only: bool) -> bool:
    if not selector.get("IncludeManagementEvents", True):
        return False
    kind = selector.get("ReadWriteType", "All")
    if (kind == "ReadOnly" and not read_only) or (kind == "WriteOnly" and read_only):
        return False
    return _KMS_SOURCE not in (selector.get("ExcludeManagementEventSources") or [])


_FIELD_TESTS: dict[str, Callable[[str, list[str]], bool]] = {
    "Equals": lambda value, vs: value in vs,
    "NotEquals": lambda value, vs: value not in vs,
    "StartsWith": lambda value, vs: any(value.startswith(v) for v in vs),
    "NotStartsWith": lambda value, vs: not any(value.startswith(v) for v in vs),
    "EndsWith": lambda value, vs: any(value.endswith(v) for v in vs),
    "NotEndsWith": lambda value, vs: not any(value.endswith(v) for v in vs),
}


def _advanced(selector: Mapping[str, Any], event: str, read_only: bool) -> bool | None:
    """Whether an advanced selector (its field selectors all hold) records the event;
    None when it filters on a field this module does not know for the event."""
    fields = {
        "eventcategory": "Management",
        "eventsource": _KMS_SOURCE,
        "eventname": event,
        "readonly": "true" if read_only else "false",
    }
    result: bool | None = True
    for selector_field in selector.get("FieldSelectors", []):
        value = fields.get(str(selector_field.get("Field", "")).lower())
        if value is None:
            result = None
            continue
        for operator, values in selector_field.items():
            if operator in _FIELD_TESTS and not _FIELD_TESTS[operator](
                value, [str(v) for v in values]
            ):
                return False
    return result


def selector_summary(selectors: Mapping[str, Any]) -> str:
    """The selectors in a few words, in parentheses after a space (for a finding)."""
    basic = selectors.get("EventSelectors") or []
    advanced = selectors.get("AdvancedEventSelectors") or []
    if advanced:
        return " (advanced event selectors)"
    if not basic:
        return " (no custom event selectors: all management events)"
    parts = []
    for selector in basic:
        if not selector.get("IncludeManagementEvents", True):
            parts.append("no management events")
            continue
        text = f"{selector.get('ReadWriteType', 'All')} management events"
        if _KMS_SOURCE in (selector.get("ExcludeManagementEventSources") or []):
            text += f" excluding {_KMS_SOURCE}"
        parts.append(text)
    return f" ({', '.join(parts)})"
