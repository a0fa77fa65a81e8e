"""Creation when AWS applies a request but its answer is lost.

A before-send handler sends the request to the endpoint for real, then raises a read
timeout: the change is made, the client never hears of it, and botocore retries (a
retried CreateKey makes another key; a retried CreateAlias or PutParameter finds
its own work and is refused). A creation must then end either complete and tidy, or
rolled back by what really exists, with an error that says what was found and undone.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ReadTimeoutError
from botocore.httpsession import URLLib3Session

from confio_kms import AlgorandKMSManager, KMSSigner
from confio_kms.common import exceptions

ALIAS = "fragile"
PATH = f"/confio/algorand/{ALIAS}/private-key"


class _Body:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body


def lose_answers(
    session: boto3.Session, service: str, operation: str, first: int | None = None
) -> list[int]:
    """Apply ``service.operation`` requests at the endpoint but lose their answers
    (the ``first`` attempts only; all when None). Returns a list that grows by one
    per lost answer."""
    http = URLLib3Session()
    attempts = itertools.count(1)
    lost: list[int] = []

    def send_then_lose(request: Any, **kwargs: Any) -> None:
        attempt = next(attempts)
        if first is not None and attempt > first:
            return None
        http.send(request).content  # noqa: B018  (read: the endpoint has answered)
        lost.append(attempt)
        raise ReadTimeoutError(endpoint_url=request.url)

    session.events.register(f"before-send.{service}.{operation}", send_then_lose)
    return lost


def refuse(session: boto3.Session, service: str, operation: str, code: str) -> None:
    body = json.dumps({"__type": code, "message": "injected refusal"}).encode()

    def answer(request: Any, **kwargs: Any) -> AWSResponse:
        return AWSResponse(request.url, 400, {"x-amzn-RequestId": "injected"}, _Body(body))

    session.events.register(f"before-send.{service}.{operation}", answer)


def key_states() -> dict[str, str]:
    kms = boto3.client("kms")
    return {
        key["KeyId"]: kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"]
        for key in kms.list_keys()["Keys"]
    }


def alias_target() -> str | None:
    for alias in boto3.client("kms").list_aliases()["Aliases"]:
        if alias["AliasName"] == f"alias/{ALIAS}":
            return str(alias.get("TargetKeyId"))
    return None


def parameter_key() -> str | None:
    found = boto3.client("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [PATH]}]
    )["Parameters"]
    return str(found[0]["KeyId"]) if found else None


def create(session: boto3.Session, native: bool) -> Any:
    return AlgorandKMSManager(session=session).create_algorand_key(ALIAS, native=native)


def failed_creation(session: boto3.Session, native: bool, step: str) -> str:
    with pytest.raises(exceptions.ProvisioningError, match=f"failed at {step}") as raised:
        create(session, native)
    message = str(raised.value)
    assert "FAILED" not in message
    return message


@pytest.mark.parametrize("native", [False, True], ids=["envelope", "native"])
def test_keys_made_by_unanswered_create_key_are_found_and_rolled_back(native: bool) -> None:
    session = boto3.Session()
    lost = lose_answers(session, "kms", "CreateKey")

    message = failed_creation(session, native, "CreateKey")

    states = key_states()
    assert len(states) == len(lost) > 1  # each attempt made a key; none was answered
    assert set(states.values()) == {"PendingDeletion"}
    for key_id in states:
        assert f"KMS key {key_id} (its CreateKey answer was lost) scheduled for deletion" in (
            message
        )
    assert "nothing had been created" not in message and "NOT undone" not in message
    assert alias_target() is None and parameter_key() is None


@pytest.mark.parametrize("native", [False, True], ids=["envelope", "native"])
def test_an_extra_key_from_a_retried_create_key_is_discarded(native: bool) -> None:
    session = boto3.Session()
    lose_answers(session, "kms", "CreateKey", first=1)

    created = create(session, native)  # the retry's answer arrived: success

    states = key_states()
    assert len(states) == 2
    assert states.pop(created.key_id) == "Enabled"
    assert list(states.values()) == ["PendingDeletion"]  # no enabled orphan
    assert alias_target() == created.key_id
    assert KMSSigner(ALIAS).address == created.address


@pytest.mark.parametrize("native", [False, True], ids=["envelope", "native"])
def test_a_create_alias_whose_answer_was_lost_is_recognised(native: bool) -> None:
    session = boto3.Session()
    lost = lose_answers(session, "kms", "CreateAlias", first=1)

    created = create(session, native)  # the retry found the alias pointing at the new key

    assert lost == [1]
    assert key_states() == {created.key_id: "Enabled"}
    assert alias_target() == created.key_id
    assert KMSSigner(ALIAS).address == created.address


@pytest.mark.parametrize("native", [False, True], ids=["envelope", "native"])
def test_an_alias_made_without_an_answer_is_removed_by_the_rollback(native: bool) -> None:
    session = boto3.Session()
    lose_answers(session, "kms", "CreateAlias")

    message = failed_creation(session, native, "CreateAlias")

    (key_id,) = key_states()
    assert key_states()[key_id] == "PendingDeletion"
    assert alias_target() is None  # not left pointing at a key pending deletion
    assert f"alias alias/{ALIAS} removed" in message
    assert f"KMS key {key_id} scheduled for deletion in 7 days" in message
    assert "NOT undone" not in message


def test_a_put_parameter_whose_answer_was_lost_is_recognised() -> None:
    session = boto3.Session()
    lost = lose_answers(session, "ssm", "PutParameter", first=1)

    created = create(session, native=False)

    assert lost == [1]
    assert parameter_key() == created.key_id and alias_target() == created.key_id
    assert KMSSigner(ALIAS).address == created.address


def test_a_parameter_written_without_an_answer_is_deleted_by_the_rollback() -> None:
    session = boto3.Session()
    lose_answers(session, "ssm", "PutParameter")

    message = failed_creation(session, False, "PutParameter")

    (key_id,) = key_states()
    assert parameter_key() is None  # the private key of a rolled-back key is not kept
    assert alias_target() is None and key_states()[key_id] == "PendingDeletion"
    assert f"SSM parameter {PATH} deleted" in message
    assert f"alias alias/{ALIAS} removed" in message and "NOT undone" not in message


def test_a_parameter_someone_else_wrote_is_never_deleted() -> None:
    """Written by another process between the manager's check and PutParameter, and
    PutParameter's refusal is lost: the rollback reads whose it is, and keeps it."""
    session = boto3.Session()
    other_key = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    written: list[str] = []

    def someone_else_writes_first(**kwargs: Any) -> None:
        if not written:
            boto3.client("ssm").put_parameter(
                Name=PATH, Value="theirs", Type="SecureString", KeyId=other_key
            )
            written.append(PATH)

    session.events.register("before-send.ssm.PutParameter", someone_else_writes_first)
    lose_answers(session, "ssm", "PutParameter")

    message = failed_creation(session, False, "PutParameter")

    assert parameter_key() == other_key
    value = boto3.client("ssm").get_parameter(Name=PATH, WithDecryption=True)["Parameter"]
    assert value["Value"] == "theirs"
    assert f"left as found: the SSM parameter {PATH} is encrypted with {other_key}" in message
    assert alias_target() is None
    assert key_states()[other_key] == "Enabled"


def test_an_undo_whose_answer_was_lost_is_judged_by_the_key_state() -> None:
    """A native key fails at TagResource (every answer lost); its ScheduleKeyDeletion
    is applied but unanswered too. The key is pending deletion: the error says so."""
    session = boto3.Session()
    lose_answers(session, "kms", "TagResource")
    lose_answers(session, "kms", "ScheduleKeyDeletion")

    message = failed_creation(session, True, "TagResource")

    (key_id,) = key_states()
    assert key_states()[key_id] == "PendingDeletion"
    assert f"KMS key {key_id} scheduled for deletion in 7 days" in message
    assert "NOT undone" not in message


def test_a_search_that_cannot_be_made_is_reported_as_not_undone() -> None:
    session = boto3.Session()
    lose_answers(session, "kms", "CreateKey")
    refuse(session, "kms", "ListKeys", "AccessDeniedException")

    message = failed_creation(session, False, "CreateKey")

    assert "nothing had been created" not in message
    assert "NOT undone, clean up by hand: could not look for a KMS key" in message
    assert "AccessDeniedException" in message
    assert "look for keys tagged exactly AlgorandAddress=" in message
    assert set(key_states().values()) == {"Enabled"}  # truly left: the error says so
