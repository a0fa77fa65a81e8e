"""The IAM and key policies, evaluated for concrete requests (confio_kms/ops/iam_evaluator.py).

What the administration role must not do (tag another application's key as ours and
delete it, move an alias onto a key that is not ours, overwrite a key parameter), what
the key policy adds (MFA for deletion and disabling; native keys deleted only by the
break-glass role), and that every request the library really makes, recorded with its
parameters against the sandbox, is still allowed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from confio_kms.core.aws import AWSClients
from confio_kms.lifecycle import policies as iam
from confio_kms.ops.iam_evaluator import (
    ALLOW,
    EXPLICIT_DENY,
    IMPLICIT_DENY,
    Request,
    allowed,
    decide,
    default_key_policy,
)

from .test_iam import ALIASES, run_administration, run_runtime

ACCOUNT = "123456789012"  # moto's account, too
REGION = "eu-central-2"
PREFIX = "/confio/algorand"
NAMES = ("confio-testnet-sponsor", "confio-mainnet-sponsor")

ADMIN = f"arn:aws:iam::{ACCOUNT}:role/confio-kms-admin"  # runtime + administration
RUNTIME = f"arn:aws:iam::{ACCOUNT}:role/confio-web"  # runtime
ACCOUNT_ADMIN = f"arn:aws:iam::{ACCOUNT}:role/account-admin"  # AdministratorAccess
BREAK_GLASS = f"arn:aws:iam::{ACCOUNT}:role/{iam.BREAK_GLASS_ROLE}"  # no IAM policy at all
ADMINISTRATOR_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}

DOCUMENTS = iam.policies(NAMES, REGION, PREFIX, ACCOUNT)
POLICIES_OF = {
    ADMIN: [DOCUMENTS["runtime"], DOCUMENTS["administration"]],
    RUNTIME: [DOCUMENTS["runtime"]],
    ACCOUNT_ADMIN: [ADMINISTRATOR_ACCESS],
    BREAK_GLASS: [],
}
DEFAULT_KEY_POLICY = default_key_policy(ACCOUNT)  # what CreateKey gives a key
KEY_POLICY = iam.key_policy(ACCOUNT)  # after `aws kms put-key-policy`
KEY_POLICIES = pytest.mark.parametrize(
    "key_policy", [DEFAULT_KEY_POLICY, KEY_POLICY], ids=["default key policy", "key policy"]
)


@dataclass(frozen=True)
class Key:
    key_id: str
    spec: str = "SYMMETRIC_DEFAULT"
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: Sequence[str] = ()

    @property
    def arn(self) -> str:
        return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{self.key_id}"

    def context(self) -> dict[str, Any]:
        return {
            "kms:KeySpec": self.spec,
            "kms:ResourceAliases": [f"alias/{a}" for a in self.aliases],
            **{f"aws:ResourceTag/{k}": v for k, v in self.tags.items()},
        }


OURS = {"ManagedBy": "confio-kms", "AlgorandNetwork": "testnet"}
ENVELOPE = Key("e1", tags=OURS, aliases=["confio-testnet-sponsor"])
NATIVE = Key("n1", "ECC_NIST_EDWARDS25519", OURS, ["confio-mainnet-sponsor"])
NEW_KEY = Key("n2", tags={**OURS, "RotationState": "pending"})  # no alias yet
LEGACY = Key("old", tags={"AlgorandAddress": "ADDR"}, aliases=["confio-testnet-sponsor"])
FOREIGN = Key("payments", tags={"Owner": "payments"}, aliases=["payments-db"])
UNTAGGED = Key("bare")  # another application's key with no tag and no alias


def on_key(
    action: str, key: Key, principal: str = ADMIN, mfa: bool | None = None, **context: Any
) -> Request:
    extra = {} if mfa is None else {"aws:MultiFactorAuthPresent": mfa}
    return Request(action, key.arn, principal, {**key.context(), **extra, **context})


def tagging(tags: Mapping[str, str]) -> dict[str, Any]:
    """The context keys of a request that sets ``tags``."""
    return {"aws:TagKeys": list(tags), **{f"aws:RequestTag/{k}": v for k, v in tags.items()}}


def outcome(request: Request, key_policy: Mapping[str, Any] | None = None) -> str:
    return decide(request, POLICIES_OF[request.principal], key_policy)


def alias_arn(name: str) -> str:
    return f"arn:aws:kms:{REGION}:{ACCOUNT}:alias/{name}"


def alias_change(action: str, alias: str, *keys: Key, key_policy: Mapping[str, Any]) -> bool:
    """An alias operation is authorized on the alias and on each key it touches."""
    on_alias = allowed(Request(action, alias_arn(alias), ADMIN), POLICIES_OF[ADMIN])
    return on_alias and all(outcome(on_key(action, k), key_policy) == ALLOW for k in keys)


# --- (a) tag-then-delete ------------------------------------------------------------


@pytest.mark.parametrize("tag_key", ["ManagedBy", "managedby", "MANAGEDBY"])
@pytest.mark.parametrize("key", [FOREIGN, UNTAGGED], ids=["tagged", "untagged"])
def test_admin_cannot_tag_another_applications_key_as_ours(key: Key, tag_key: str) -> None:
    ours = tagging({tag_key: "confio-kms"})
    assert outcome(on_key("kms:TagResource", key, **ours), DEFAULT_KEY_POLICY) == EXPLICIT_DENY
    both = tagging({tag_key: "confio-kms", "AlgorandNetwork": "testnet"})
    assert outcome(on_key("kms:TagResource", key, **both), DEFAULT_KEY_POLICY) == EXPLICIT_DENY


def test_the_tag_then_delete_escalation_is_refused_at_its_first_step() -> None:
    # The escalation: tag a key that is not ours ManagedBy=confio-kms, then delete it.
    # The tag is what would make the deletion allowed ...
    tagged = replace(FOREIGN, tags={**FOREIGN.tags, "ManagedBy": "confio-kms"})
    delete = on_key("kms:ScheduleKeyDeletion", tagged, mfa=True)
    assert outcome(delete, DEFAULT_KEY_POLICY) == ALLOW
    assert outcome(on_key("kms:ScheduleKeyDeletion", FOREIGN, mfa=True)) != ALLOW
    # ... and the tag cannot be set: an explicit Deny, whatever else the role has.
    tag = on_key("kms:TagResource", FOREIGN, **tagging({"ManagedBy": "confio-kms"}))
    assert outcome(tag, DEFAULT_KEY_POLICY) == EXPLICIT_DENY
    assert decide(tag, [*POLICIES_OF[ADMIN], ADMINISTRATOR_ACCESS], DEFAULT_KEY_POLICY) == (
        EXPLICIT_DENY
    )


def test_the_managed_by_tag_is_never_changed_or_removed_on_an_existing_key() -> None:
    for key in (ENVELOPE, NEW_KEY, LEGACY):
        retag = on_key("kms:TagResource", key, **tagging({"ManagedBy": "someone-else"}))
        assert outcome(retag, DEFAULT_KEY_POLICY) == EXPLICIT_DENY
        managed_by: dict[str, Any] = {"aws:TagKeys": ["ManagedBy"]}
        untag = on_key("kms:UntagResource", key, **managed_by)
        assert outcome(untag, DEFAULT_KEY_POLICY) == EXPLICIT_DENY
    # Other tags on our keys stay allowed (rotation state, network, address).
    for key in (ENVELOPE, NEW_KEY, LEGACY):
        other = on_key("kms:TagResource", key, **tagging({"RotationState": "active"}))
        assert outcome(other, DEFAULT_KEY_POLICY) == ALLOW
    assert outcome(on_key("kms:TagResource", FOREIGN, **tagging({"X": "y"}))) != ALLOW


def test_only_a_new_key_gets_the_managed_by_tag() -> None:
    # CreateKey and its tags are authorized on no particular key (resource "*").
    tags = tagging({"ManagedBy": "confio-kms", "AlgorandNetwork": "testnet"})
    for action in ("kms:CreateKey", "kms:TagResource"):
        assert allowed(Request(action, "*", ADMIN, tags), POLICIES_OF[ADMIN])
        untagged = Request(action, "*", ADMIN, tagging({"AlgorandNetwork": "testnet"}))
        assert not allowed(untagged, POLICIES_OF[ADMIN])


# --- (b) aliases --------------------------------------------------------------------


@KEY_POLICIES
def test_admin_cannot_point_an_alias_at_a_key_that_is_not_ours(
    key_policy: Mapping[str, Any],
) -> None:
    alias, staging = NAMES[0], f"{NAMES[0]}--pending-rotation"
    for other in (FOREIGN, UNTAGGED):
        assert not alias_change("kms:UpdateAlias", alias, ENVELOPE, other, key_policy=key_policy)
        assert not alias_change("kms:CreateAlias", alias, other, key_policy=key_policy)
        assert not alias_change("kms:CreateAlias", staging, other, key_policy=key_policy)
    # Nor touch another application's alias.
    assert not alias_change("kms:DeleteAlias", "payments-db", FOREIGN, key_policy=key_policy)
    assert not alias_change(
        "kms:UpdateAlias", "payments-db", FOREIGN, NEW_KEY, key_policy=key_policy
    )
    assert not alias_change("kms:CreateAlias", "payments-2", NEW_KEY, key_policy=key_policy)
    # What rotation does is allowed: between our keys, on our aliases.
    for current in (ENVELOPE, LEGACY):
        assert alias_change("kms:UpdateAlias", alias, current, NEW_KEY, key_policy=key_policy)
        assert alias_change("kms:DeleteAlias", alias, current, key_policy=key_policy)
    assert alias_change("kms:CreateAlias", staging, NEW_KEY, key_policy=key_policy)
    assert alias_change("kms:CreateAlias", alias, NEW_KEY, key_policy=key_policy)


# --- (c) parameters -----------------------------------------------------------------


def test_admin_creates_key_parameters_but_never_overwrites_one() -> None:
    parameter = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{PREFIX}/{NAMES[0]}/private-key"

    def put(**context: Any) -> str:
        return outcome(Request("ssm:PutParameter", parameter, ADMIN, context))

    assert put(**{"ssm:Overwrite": "true"}) == EXPLICIT_DENY
    assert put(**{"ssm:Overwrite": "false"}) == ALLOW
    assert put() == ALLOW  # no Overwrite in the request: no ssm:Overwrite key
    elsewhere = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/payments/db-password"
    assert outcome(Request("ssm:PutParameter", elsewhere, ADMIN, {})) == IMPLICIT_DENY


# --- (d) deletion and disabling need MFA ----------------------------------------------


@pytest.mark.parametrize("action", ["kms:ScheduleKeyDeletion", "kms:DisableKey"])
def test_the_key_policy_requires_mfa_to_delete_or_disable(action: str) -> None:
    for key in (ENVELOPE, LEGACY):
        # Long-term access keys (no MFA key at all), a session without MFA, with MFA.
        for mfa in (None, False):
            request = on_key(action, key, ACCOUNT_ADMIN, mfa)
            assert outcome(request, DEFAULT_KEY_POLICY) == ALLOW  # what the key policy fixes
            assert outcome(request, KEY_POLICY) == EXPLICIT_DENY
        assert outcome(on_key(action, key, ACCOUNT_ADMIN, mfa=True), KEY_POLICY) == ALLOW


@KEY_POLICIES
def test_the_administration_role_deletes_envelope_keys_only_with_mfa(
    key_policy: Mapping[str, Any],
) -> None:
    for key in (ENVELOPE, NEW_KEY, LEGACY):
        for mfa in (None, False):
            request = on_key("kms:ScheduleKeyDeletion", key, mfa=mfa)
            assert outcome(request, key_policy) == EXPLICIT_DENY
        assert outcome(on_key("kms:ScheduleKeyDeletion", key, mfa=True), key_policy) == ALLOW
        assert outcome(on_key("kms:DisableKey", key, mfa=True), key_policy) == IMPLICIT_DENY


def test_the_key_never_becomes_unmanageable() -> None:
    # The account keeps kms:* through IAM; changing the key policy needs MFA too.
    put = "kms:PutKeyPolicy"
    assert outcome(on_key(put, ENVELOPE, ACCOUNT_ADMIN, mfa=True), KEY_POLICY) == ALLOW
    assert outcome(on_key(put, ENVELOPE, ACCOUNT_ADMIN), KEY_POLICY) == EXPLICIT_DENY
    root = f"arn:aws:iam::{ACCOUNT}:root"
    assert decide(on_key(put, NATIVE, root, mfa=True), [], KEY_POLICY) == ALLOW
    assert decide(on_key("kms:EnableKey", NATIVE, root), [], KEY_POLICY) == ALLOW
    assert outcome(on_key("kms:EnableKey", NATIVE, ACCOUNT_ADMIN), KEY_POLICY) == ALLOW
    statement = KEY_POLICY["Statement"][0]
    assert statement == {**DEFAULT_KEY_POLICY["Statement"][0], "Sid": statement["Sid"],
                         "Action": ["kms:*"]}  # fmt: skip


# --- (e) native keys ----------------------------------------------------------------


def test_only_the_break_glass_role_with_mfa_deletes_a_native_key() -> None:
    delete = "kms:ScheduleKeyDeletion"
    # The administration role never, whatever the key policy.
    for key_policy in (DEFAULT_KEY_POLICY, KEY_POLICY):
        assert outcome(on_key(delete, NATIVE, mfa=True), key_policy) == EXPLICIT_DENY
        new_native = replace(NEW_KEY, spec="ECC_NIST_EDWARDS25519")
        assert outcome(on_key(delete, new_native, mfa=True), key_policy) == EXPLICIT_DENY
    # An account administrator with MFA: only under the key policy.
    assert outcome(on_key(delete, NATIVE, ACCOUNT_ADMIN, mfa=True), DEFAULT_KEY_POLICY) == ALLOW
    assert outcome(on_key(delete, NATIVE, ACCOUNT_ADMIN, mfa=True), KEY_POLICY) == EXPLICIT_DENY
    root = f"arn:aws:iam::{ACCOUNT}:root"
    assert decide(on_key(delete, NATIVE, root, mfa=True), [], KEY_POLICY) == EXPLICIT_DENY
    # The break-glass role: by the key policy alone, with MFA only.
    assert outcome(on_key(delete, NATIVE, BREAK_GLASS, mfa=True), KEY_POLICY) == ALLOW
    assert outcome(on_key("kms:CancelKeyDeletion", NATIVE, BREAK_GLASS, mfa=True), KEY_POLICY) == (
        ALLOW
    )
    for mfa in (None, False):
        assert outcome(on_key(delete, NATIVE, BREAK_GLASS, mfa), KEY_POLICY) == EXPLICIT_DENY
    # It can do nothing else.
    for action in ("kms:Sign", "kms:DisableKey", "kms:PutKeyPolicy", "kms:TagResource"):
        assert outcome(on_key(action, NATIVE, BREAK_GLASS, mfa=True), KEY_POLICY) != ALLOW
    # A request without kms:KeySpec is treated as a native key (fails closed).
    unknown = Request(delete, ENVELOPE.arn, ACCOUNT_ADMIN, {"aws:MultiFactorAuthPresent": True})
    assert outcome(unknown, KEY_POLICY) == EXPLICIT_DENY
    # Disabling a native key is reversible: MFA suffices.
    assert outcome(on_key("kms:DisableKey", NATIVE, ACCOUNT_ADMIN, mfa=True), KEY_POLICY) == ALLOW


# --- (f) every request the library makes ----------------------------------------------


@dataclass
class Recorded:
    phase: str
    operation: str
    request: Request
    on_key: bool


class Recorder:
    """Each AWS request the library sends, as the authorizations AWS makes for it,
    with the context read from the sandbox just before the request is sent."""

    def __init__(self) -> None:
        self.phase = ""
        self.seen: list[Recorded] = []
        self.unresolved: list[str] = []

    def observe(self, aws: AWSClients, service: str, operation: str, params: dict[str, Any]) -> int:
        """Record the authorizations of a request about to be sent; return how many."""
        checks = list(self._checks(aws, service, operation, params))
        for action, resource, context, keyed in checks:
            request = Request(action, resource, "caller", context)
            self.seen.append(Recorded(self.phase, f"{service}:{operation}", request, keyed))
        return len(checks)

    def _checks(
        self, aws: AWSClients, service: str, operation: str, params: dict[str, Any]
    ) -> Iterator[tuple[str, str, dict[str, Any], bool]]:
        action = f"{service}:{operation}"
        if action in ("kms:ListAliases", "kms:ListKeys"):
            yield action, "*", {}, False
        elif action == "kms:CreateKey":
            context = {**_tags(params.get("Tags", [])), "kms:KeySpec": params["KeySpec"]}
            yield action, "*", context, False
            if params.get("Tags"):
                yield "kms:TagResource", "*", context, False
        elif action in ("kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"):
            name = params["AliasName"]
            yield action, f"arn:aws:kms:{aws.region}:{ACCOUNT}:{name}", {}, False
            targets = [_alias_target(aws, name)] if action != "kms:CreateAlias" else []
            targets += [params["TargetKeyId"]] if "TargetKeyId" in params else []
            for target in targets:
                yield from _on_key(aws, action, target, {})
        elif service == "kms":
            extra = _tags(params.get("Tags", [])) if operation == "TagResource" else {}
            if operation == "Decrypt":  # envelope signing: the parameter's context
                context = params.get("EncryptionContext", {})
                extra = {f"kms:EncryptionContext:{k}": v for k, v in context.items()}
                extra["kms:EncryptionContextKeys"] = sorted(context)
            yield from _on_key(aws, action, params["KeyId"], extra)
        elif action == "ssm:GetParameter":
            name = params["Name"]
            yield action, _parameter_arn(aws, name), {}, False
            key_id = _parameter_key(aws, name) if params.get("WithDecryption") else None
            if key_id:
                yield from _on_key(aws, "kms:Decrypt", key_id, _via_ssm(aws, name))
        elif action == "ssm:PutParameter":
            arn = _parameter_arn(aws, params["Name"])
            overwrite = {"ssm:Overwrite": str(params["Overwrite"]).lower()}
            tags = {t["Key"]: t["Value"] for t in params.get("Tags", [])}
            yield action, arn, overwrite if "Overwrite" in params else {}, False
            if tags:
                yield "ssm:AddTagsToResource", arn, tagging(tags), False
            yield from _on_key(aws, "kms:Encrypt", params["KeyId"], _via_ssm(aws, params["Name"]))


def _tags(tags: list[dict[str, str]]) -> dict[str, Any]:
    return tagging({t["TagKey"]: t["TagValue"] for t in tags})


def _on_key(
    aws: AWSClients, action: str, key_id: str, extra: dict[str, Any]
) -> Iterator[tuple[str, str, dict[str, Any], bool]]:
    try:
        metadata = aws.kms.describe_key(KeyId=key_id)["KeyMetadata"]
    except ClientError:  # no such key or alias: AWS answers NotFound, nothing to authorize
        return
    tags = aws.kms.list_resource_tags(KeyId=metadata["KeyId"])["Tags"]
    aliases = aws.kms.list_aliases(KeyId=metadata["KeyId"])["Aliases"]
    key = Key(
        metadata["KeyId"],
        metadata.get("KeySpec", "SYMMETRIC_DEFAULT"),
        {t["TagKey"]: t["TagValue"] for t in tags},
        [a["AliasName"].removeprefix("alias/") for a in aliases],
    )
    yield action, metadata["Arn"], {**key.context(), **extra}, True


def _alias_target(aws: AWSClients, name: str) -> str:
    aliases = aws.kms.list_aliases()["Aliases"]
    return next(a["TargetKeyId"] for a in aliases if a["AliasName"] == name)


def _parameter_arn(aws: AWSClients, name: str) -> str:
    return f"arn:aws:ssm:{aws.region}:{ACCOUNT}:parameter{name}"


def _parameter_key(aws: AWSClients, name: str) -> str | None:
    found = aws.ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}]
    )["Parameters"]
    return found[0].get("KeyId") if found else None


def _via_ssm(aws: AWSClients, name: str) -> dict[str, Any]:
    """What SSM's request to KMS on the caller's behalf carries: the service and the
    parameter's encryption context (its ARN)."""
    return {
        "kms:ViaService": f"ssm.{aws.region}.amazonaws.com",
        iam.PARAMETER_ARN_CONTEXT: _parameter_arn(aws, name),
        "kms:EncryptionContextKeys": [iam.PARAMETER_ARN],
    }


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    send = AWSClients._call

    def observe(
        self: AWSClients, service: str, operation: str, resource: str, params: dict[str, Any]
    ) -> Any:
        checks = recorder.observe(self, service, operation, params)
        response = send(self, service, operation, resource, params)
        if not checks:  # succeeded, yet nothing was authorized: a gap in _checks
            recorder.unresolved.append(f"{service}:{operation} on {resource}")
        return response

    monkeypatch.setattr(AWSClients, "_call", observe)
    return recorder


def as_caller(recorded: Recorded, principal: str, mfa: bool | None) -> Request:
    context = dict(recorded.request.context)
    if mfa is not None:
        context["aws:MultiFactorAuthPresent"] = mfa
    return replace(recorded.request, principal=principal, context=context)


@override_settings(
    CONFIO_SANDBOX=True, CONFIO_KMS_ALLOW_DELEGATION="every-network", KMS_REGION=REGION
)
def test_every_request_the_library_makes_is_allowed(recorder: Recorder, tmp_path: Path) -> None:
    recorder.phase = "administration"
    run_administration(tmp_path)
    recorder.phase = "runtime"
    run_runtime()
    assert not recorder.unresolved
    policies = iam.policies(ALIASES, REGION, PREFIX, ACCOUNT)
    of = {
        ADMIN: [policies["runtime"], policies["administration"]],
        RUNTIME: [policies["runtime"]],
        BREAK_GLASS: [],
    }
    refused: list[str] = []

    def expect(recorded: Recorded, principal: str, mfa: bool | None, want: bool) -> None:
        request = as_caller(recorded, principal, mfa)
        for key_policy in (DEFAULT_KEY_POLICY, KEY_POLICY) if recorded.on_key else (None,):
            if key_policy is DEFAULT_KEY_POLICY and principal == BREAK_GLASS:
                continue  # the break-glass role is granted by the key policy only
            if allowed(request, of[principal], key_policy) != want:
                which = "key policy" if key_policy is KEY_POLICY else "default key policy"
                refused.append(
                    f"{recorded.operation}: {request.action} on {request.resource} by "
                    f"{principal.rpartition('/')[2]} (MFA {mfa}, {which}) should be "
                    f"{'allowed' if want else 'denied'}; context {dict(request.context)}"
                )

    for recorded in recorder.seen:
        action = recorded.request.action
        native = recorded.request.context.get("kms:KeySpec", "SYMMETRIC_DEFAULT") != (
            "SYMMETRIC_DEFAULT"
        )
        if recorded.phase == "runtime":
            expect(recorded, RUNTIME, None, True)
        elif action == "kms:ScheduleKeyDeletion" and native:
            expect(recorded, ADMIN, True, False)
            expect(recorded, BREAK_GLASS, True, True)
            expect(recorded, BREAK_GLASS, None, False)
        elif action in iam.MFA_ACTIONS:
            expect(recorded, ADMIN, True, True)
            expect(recorded, ADMIN, None, False)
            expect(recorded, ADMIN, False, False)
        else:  # with or without MFA
            expect(recorded, ADMIN, True, True)
            expect(recorded, ADMIN, None, True)
    assert not refused, "\n".join(refused)
    # Every kind of request was seen, each authorization included.
    actions = {r.request.action for r in recorder.seen}
    assert {"kms:TagResource", "kms:UpdateAlias", "kms:ScheduleKeyDeletion", "kms:Sign"} <= actions
    assert actions >= iam.SERVER_SIDE_ACTIONS
    deleted = {r.request.context["kms:KeySpec"] for r in recorder.seen
               if r.request.action == "kms:ScheduleKeyDeletion"}  # fmt: skip
    assert deleted == {"SYMMETRIC_DEFAULT", "ECC_NIST_EDWARDS25519"}


# --- the kms_policy command ---------------------------------------------------------


def run(*args: str) -> Any:
    out = io.StringIO()
    call_command("kms_policy", *args, stdout=out)
    return json.loads(out.getvalue())


def test_kms_policy_prints_the_key_policy() -> None:
    assert run("--key-policy", "--account-id", ACCOUNT) == iam.key_policy(ACCOUNT)
    assert set(run("--account-id", ACCOUNT)) == {"runtime", "administration"}
    assert set(run()) == {"runtime", "administration"}


@pytest.mark.parametrize(
    "args",
    [
        ["--key-policy"],
        ["--key-policy", "--account-id", "12345678901"],
        ["--key-policy", "--account-id", "1234567890123"],
        ["--key-policy", "--account-id", "12345678901a"],
        ["--account-id", "my-account"],
    ],
)
def test_kms_policy_refuses_an_account_id_that_is_not_twelve_digits(args: list[str]) -> None:
    with pytest.raises(CommandError) as refused:
        call_command("kms_policy", *args, stdout=io.StringIO())
    assert "\n" not in str(refused.value) and "account" in str(refused.value)


def test_key_policy_refuses_a_bad_account_id_with_a_typed_error() -> None:
    from confio_kms.common.exceptions import ConfigurationError

    with pytest.raises(ConfigurationError):
        iam.key_policy("*")
    with pytest.raises(ConfigurationError):
        iam.account_id(123456789012)


def test_the_install_guide_shows_the_policies_the_command_prints() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "install.md").read_text()

    def shown(command: str) -> Any:
        block = page.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
        return json.loads(block)

    key_policy_command = f"manage.py kms_policy --key-policy --account-id {ACCOUNT}"
    assert shown(key_policy_command) == iam.key_policy(ACCOUNT)
    shown_policies = shown(f"manage.py kms_policy --account-id {ACCOUNT}")
    assert shown_policies == iam.policies(NAMES, REGION, PREFIX, ACCOUNT)


def test_the_commands_page_shows_what_the_command_prints() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "commands.md").read_text()
    for args in (
        ["--alias", "confio-mainnet-sponsor", "--account-id", ACCOUNT],
        ["--key-policy", "--account-id", ACCOUNT],
    ):
        command = "manage.py kms_policy " + " ".join(args)
        block = page.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
        out = io.StringIO()
        call_command("kms_policy", *args, stdout=out)
        assert json.loads(block) == json.loads(out.getvalue())


def test_keys_get_the_key_policy_at_creation_when_asked(tmp_path: Path) -> None:
    from django.test import override_settings

    from confio_kms import AlgorandKMSManager
    from confio_kms.common import exceptions

    kms = boto3.client("kms")
    manager = AlgorandKMSManager()
    default = manager.create_algorand_key("plain").key_id
    assert json.loads(kms.get_key_policy(KeyId=default, PolicyName="default")["Policy"]) != (
        iam.key_policy(ACCOUNT)
    )
    with override_settings(CONFIO_KMS_KEY_POLICY_ACCOUNT=ACCOUNT):
        out = io.StringIO()
        call_command(
            "kms_setup", "--create-new", "--alias", "guarded", f"--mnemonic-out={tmp_path}/m",
            stdout=out,
        )  # fmt: skip
        assert "deletion and disabling need MFA" in out.getvalue()
        # Built inside the override: a manager reads the settings when it is built.
        guarded = AlgorandKMSManager()
        native = guarded.create_algorand_key("guarded-native", kind="native").key_id
        envelope = kms.describe_key(KeyId="alias/guarded")["KeyMetadata"]["KeyId"]
        for key in (envelope, native):
            policy = kms.get_key_policy(KeyId=key, PolicyName="default")["Policy"]
            assert json.loads(policy) == iam.key_policy(ACCOUNT)
    out = io.StringIO()
    call_command(
        "kms_setup", "--create-new", "--alias", "open", f"--mnemonic-out={tmp_path}/o", stdout=out
    )
    assert "deletion needs no MFA" in out.getvalue()
    with (
        override_settings(CONFIO_KMS_KEY_POLICY_ACCOUNT="12345"),
        pytest.raises(exceptions.ConfigurationError, match="CONFIO_KMS_KEY_POLICY_ACCOUNT"),
    ):
        AlgorandKMSManager().create_algorand_key("bad-account")


# --- (g) decrypting an envelope key's parameter -------------------------------------


def _parameter(name: str, suffix: str = "") -> str:
    return f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter{PREFIX}/{name}/private-key{suffix}"


def decrypt(key: Key, context: Mapping[str, Any], *, via_ssm: bool) -> str:
    extra = {"kms:ViaService": f"ssm.{REGION}.amazonaws.com"} if via_ssm else {}
    return outcome(on_key("kms:Decrypt", key, RUNTIME, **context, **extra), KEY_POLICY)


@pytest.mark.parametrize("via_ssm", [True, False], ids=["through SSM", "direct"])
def test_the_runtime_role_decrypts_only_its_own_parameters_ciphertext(via_ssm: bool) -> None:
    own, other = NAMES
    for key in (ENVELOPE, LEGACY):  # a key of the alias, made by us or by the old scripts
        for suffix in ("", "-1a2b3c4d"):  # the parameter it was created with, a rotated one
            context = {iam.PARAMETER_ARN_CONTEXT: _parameter(own, suffix)}
            assert decrypt(key, context, via_ssm=via_ssm) == ALLOW
        refused = [
            {},  # no encryption context: any ciphertext under the key
            {iam.PARAMETER_ARN_CONTEXT: _parameter(other)},  # another alias's parameter
            {iam.PARAMETER_ARN_CONTEXT: f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/payments/x"},
            {iam.PARAMETER_ARN_CONTEXT: _parameter(own, "x")},
            {"kms:EncryptionContext:Purpose": _parameter(own)},
        ]
        for context in refused:
            assert decrypt(key, context, via_ssm=via_ssm) == IMPLICIT_DENY, context
    # Another application's key, even with our parameter's context.
    context = {iam.PARAMETER_ARN_CONTEXT: _parameter(own)}
    assert decrypt(FOREIGN, context, via_ssm=via_ssm) == IMPLICIT_DENY


def test_an_alias_key_never_decrypts_with_another_alias_parameter_context() -> None:
    """One statement per alias: the testnet key with the mainnet parameter's context is
    refused, although both aliases are in the policy."""
    mainnet_key = Key("m1", tags=OURS, aliases=["confio-mainnet-sponsor"])
    for key, name in ((ENVELOPE, NAMES[1]), (mainnet_key, NAMES[0])):
        context = {iam.PARAMETER_ARN_CONTEXT: _parameter(name)}
        assert decrypt(key, context, via_ssm=True) == IMPLICIT_DENY
    own = {iam.PARAMETER_ARN_CONTEXT: _parameter(NAMES[1])}
    assert decrypt(mainnet_key, own, via_ssm=False) == ALLOW
