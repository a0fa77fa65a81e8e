"""``kms_doctor``: the migration checklist and the security practices, checked against
the live account.

``run()`` returns a ``Report`` of ``Finding``s, each with a status:

- ``pass``: checked in the account and as it should be;
- ``warn``: works, but falls short of a practice (the fix says how to close the gap);
- ``fail``: broken or unsafe (the command exits non-zero);
- ``unknown``: could not be checked (AWS refused or failed a request, or the answer
  depends on something the doctor cannot see); never a pass;
- ``reminder``: needs a person (offline backups, a rehearsed break-glass procedure).

Every check runs on its own: a failing AWS request makes its own check ``unknown`` (or
``fail`` where the failure is the answer, such as a missing alias), never the whole run.
No check prints a secret: findings are built from names, ARNs, addresses and AWS error
codes. Nothing is changed in AWS and nothing is submitted to a network.

The report, the run and the checks of the settings, the keys and the test signature
live here. What the identity may do is decided by ``confio_kms.ops.permissions`` (IAM's
policy simulator, else a reading of the identity's policies, weighed with the key
policy's statements that name the identity) on the requests ``_Doctor._probes`` lists;
whether a trail records KMS's events, by ``confio_kms.ops.cloudtrail``. An ``iam.signing``
failure for the caller's own credentials that the test signature contradicts is
``unknown``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import boto3
from algosdk import transaction

from confio_kms import factory as conf
from confio_kms import settings as config
from confio_kms.algorand import chain, networks, validation
from confio_kms.checks import (
    LEGACY_MNEMONIC,
    MNEMONIC_LIKE,
    legacy_mnemonic_configured,
    secret_names,
)
from confio_kms.common import exceptions as exc
from confio_kms.common import progress
from confio_kms.core import keys, kinds, native
from confio_kms.core.aws import AWSClients
from confio_kms.core.signer import KMSSigner
from confio_kms.lifecycle import policies as iam
from confio_kms.ops.cloudtrail import KMS_EVENTS, captures, either, selector_summary
from confio_kms.ops.permissions import (
    ALLOWED,
    DENIED,
    UNDETERMINED,
    WITHOUT_MFA,
    CannotTell,
    Decision,
    Probe,
    Who,
    decide,
    denied_without_mfa,
    principal_arn,
)

SERVICES = ("sts", "iam", "cloudtrail")


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    UNKNOWN = "unknown"
    REMINDER = "reminder"


@dataclass(frozen=True)
class Finding:
    """One checked item: ``check`` is a stable id (``key.state``), ``subject`` what it
    is about (an alias, the identity, the region), ``fix`` what to do ("" on a pass)."""

    check: str
    status: Status
    message: str
    fix: str = ""
    subject: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "subject": self.subject or None,
            "status": self.status.value,
            "message": self.message,
            "fix": self.fix or None,
        }


@dataclass(frozen=True)
class Report:
    """Every finding of one run, in the order checked."""

    findings: tuple[Finding, ...]
    region: str = ""

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if f.status is Status.FAIL]

    def counts(self) -> dict[str, int]:
        return {status.value: sum(f.status is status for f in self.findings) for status in Status}

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.region or None,
            "findings": [f.as_dict() for f in self.findings],
            "counts": self.counts(),
            "failed": [f.check for f in self.failed],
        }


def run(*, session: boto3.Session | None = None, principal: str | None = None) -> Report:
    """Check the configured deployment against the live account.

    ``session``: the boto3 session for every request (the test signature's too); by
    default the one ``conf.kms_signer`` builds. ``principal``: the ARN of an IAM user or
    role whose permissions to check instead of the caller's (for an operator checking
    the app's role). Raises ``ConfigurationError`` only when no AWS client can be built
    (a missing ``AWS_PROFILE``) or ``principal`` is not an IAM user or role ARN.
    """
    target = principal_arn(principal) if principal else None
    try:
        settings = config.kms_settings()
    except exc.ConfigurationError as error:
        return Report((Finding("settings.valid", Status.FAIL, error.message, error.fix or ""),))
    aws = AWSClients(
        settings.region,
        endpoint_url=settings.endpoint_url,
        session=session,
        services=SERVICES,
        options=config.options(),
    )
    doctor = _Doctor(settings, aws, session)
    findings = [
        *doctor.settings(),
        *doctor.keys(),
        *doctor.permissions(target),
        *doctor.cloudtrail(),
        *doctor.signature(),
        *doctor.reminders(),
    ]
    if target is None:
        findings = _signed_anyway(findings)
    return Report(tuple(findings), aws.region)


def _signed_anyway(findings: list[Finding]) -> list[Finding]:
    """The findings, with an ``iam.signing`` failure made ``unknown`` when the test
    signature, made with the very credentials whose permissions were checked, passed:
    something the doctor does not see (a grant, a policy it cannot evaluate) allows
    what the policies it read do not."""
    signed = any(f.check == "signature" and f.status is Status.PASS for f in findings)
    if not signed:
        return findings
    return [
        Finding(
            f.check,
            Status.UNKNOWN,
            "Contradicted by the test signature, which these credentials made: "
            f"{f.message} Something the doctor does not see allows it (a grant, or a "
            "policy it cannot evaluate).",
            "Find what allows signing (`aws kms list-grants --key-id KEY_ID`, the key "
            "policy, IAM's policy simulator) and grant it by the runtime policy from "
            "`manage.py kms_policy` instead.",
            f.subject,
        )
        if f.check == "iam.signing" and f.status is Status.FAIL
        else f
        for f in findings
    ]


# --- what is checked --------------------------------------------------------------


@dataclass
class _Target:
    """A configured alias: the settings that name it, its network, the addresses the
    settings expect it to sign for, and whether it must exist."""

    name: str
    settings: list[str]
    network: str
    expected: list[tuple[str, str]] = field(default_factory=list)
    required: bool = True


@dataclass
class _Key:
    target: _Target
    metadata: dict[str, Any]
    tags: dict[str, str] | None = None
    info: keys.KeyInfo | None = None
    policy: dict[str, Any] | None = None  # its key policy, when readable

    @property
    def arn(self) -> str:
        return str(self.metadata.get("Arn", ""))

    @property
    def key_id(self) -> str:
        return str(self.metadata["KeyId"])


class _Doctor:
    def __init__(
        self, settings: config.KMSSettings, aws: AWSClients, session: boto3.Session | None
    ) -> None:
        self.conf = settings
        self.aws = aws
        self.session = session
        self.account = ""
        self.found: dict[str, _Key] = {}
        self.targets = _targets(settings)
        self.regional: dict[str, AWSClients] = {}

    # -- settings ----------------------------------------------------------------

    def settings(self) -> list[Finding]:
        progress.step("reading the settings")
        found = []
        if self.conf.use_kms_signing:
            found.append(Finding("settings.kms_signing", Status.PASS, "USE_KMS_SIGNING is on."))
        else:
            found.append(
                Finding(
                    "settings.kms_signing",
                    Status.FAIL,
                    "USE_KMS_SIGNING is off: the app does not sign with the KMS key.",
                    "Set USE_KMS_SIGNING=true where the app reads its settings (settings, "
                    "the environment or .env) and restart every app process "
                    "(docs/migration.md, Switch).",
                )
            )
        # Settings and environment variables named like a mnemonic, seed, phrase or
        # private key, or whose value is an Algorand mnemonic or private key (names only).
        names = secret_names(named=MNEMONIC_LIKE)
        if legacy_mnemonic_configured() and not any(n.startswith(LEGACY_MNEMONIC) for n in names):
            names.append(f"{LEGACY_MNEMONIC} (.env or settings.ini)")
        if names:
            found.append(
                Finding(
                    "settings.mnemonic",
                    Status.FAIL,
                    f"A mnemonic or private key is still configured: {', '.join(names)}.",
                    "Remove it from settings, the environment, .env files, secret stores and "
                    "CI variables, keep only the offline backup, and restart the app.",
                )
            )
        else:
            found.append(
                Finding(
                    "settings.mnemonic",
                    Status.PASS,
                    "No Django setting or environment variable of this process is named like "
                    "a mnemonic, seed, phrase or private key or holds an Algorand mnemonic or "
                    f"base64 private key, and {LEGACY_MNEMONIC} is not in .env or settings.ini "
                    "(other hosts, secret stores and CI variables are not checked).",
                )
            )
        return found

    # -- keys ---------------------------------------------------------------------

    def keys(self) -> list[Finding]:
        found: list[Finding] = []
        for target in self.targets:
            progress.step(f"checking alias/{target.name}")
            found += self._key(target)
        return found

    def _key(self, target: _Target) -> list[Finding]:
        alias = f"alias/{target.name}"
        named = " and ".join(target.settings)
        try:
            metadata = keys.describe_key(self.aws, target.name)
        except exc.AliasNotFoundError as error:
            if not target.required:
                return []  # the other network's default alias, never configured
            return [
                Finding(
                    "key.exists",
                    Status.FAIL,
                    f"{named} names {alias}: {error.message}",
                    error.fix or "",
                    alias,
                )
            ]
        except exc.ConfioKMSError as error:
            return [_unknown("key.exists", alias, error)]
        key = _Key(target, metadata)
        self.found[target.name] = key
        self.account = self.account or _arn_account(key.arn)
        found = [
            Finding(
                "key.exists",
                Status.PASS,
                f"{alias} ({named}) points at KMS key {key.key_id} ({_kind(metadata)}).",
                subject=alias,
            ),
            _state(alias, metadata),
        ]
        try:
            key.tags = keys.read_tags(self.aws, key.key_id, alias)
        except exc.ConfioKMSError as error:
            found += [_unknown("key.network", alias, error), _unknown("key.address", alias, error)]
        else:
            found.append(_network(target, alias, key.tags))
            found.append(self._address(key, alias))
        found.append(self._key_policy(key, alias))
        return found

    def _address(self, key: _Key, alias: str) -> Finding:
        assert key.tags is not None
        try:
            key.info = kinds.key_info(key.target.name, key.metadata, key.tags, self.aws.options)
        except exc.NotAnAlgorandKeyError as error:
            return Finding("key.address", Status.FAIL, error.message, error.fix or "", alias)
        address = key.info.address
        wrong = [(name, value) for name, value in key.target.expected if value != address]
        if wrong:
            name, value = wrong[0]
            return Finding(
                "key.address",
                Status.FAIL,
                f"{name} is {value} but {alias} signs for {address}.",
                f"Remove {name} (the address comes from KMS) or point "
                f"{' / '.join(key.target.settings)} at the key of {value} (`manage.py kms_list`).",
                alias,
            )
        if key.target.expected:
            said = " and ".join(name for name, _ in key.target.expected)
            return Finding(
                "key.address",
                Status.PASS,
                f"{alias} signs for {address}, as {said} says.",
                subject=alias,
            )
        return Finding(
            "key.address",
            Status.PASS,
            f"{alias} signs for {address} (no address setting to compare: it comes from KMS).",
            subject=alias,
        )

    def _key_policy(self, key: _Key, alias: str) -> Finding:
        try:
            answer = self.aws.call(
                "kms", "GetKeyPolicy", alias, KeyId=key.key_id, PolicyName="default"
            )
            policy = json.loads(answer["Policy"])
        except exc.ConfioKMSError as error:
            return _unknown("key.mfa", alias, error)
        except (ValueError, KeyError, TypeError):
            return Finding(
                "key.mfa",
                Status.UNKNOWN,
                f"The key policy of {alias} is not readable JSON.",
                subject=alias,
            )
        if isinstance(policy, dict):
            key.policy = policy
        return _mfa(policy, alias, key, self.aws.region)

    # -- permissions --------------------------------------------------------------

    def permissions(self, principal: str | None) -> list[Finding]:
        progress.step("identifying the AWS credentials (sts:GetCallerIdentity)")
        subject = "identity"
        try:
            caller = self.aws.call("sts", "GetCallerIdentity", "the credentials in use")
        except exc.ConfioKMSError as error:
            reason = "the credentials could not be identified (sts:GetCallerIdentity failed)"
            return [
                _unknown("iam.identity", subject, error),
                *_cannot_tell(principal or subject, reason),
            ]
        arn = str(caller.get("Arn", ""))
        self.account = str(caller.get("Account", "")) or self.account
        checked = principal or arn
        who = Who.from_arn(checked)
        found = [
            Finding(
                "iam.identity",
                Status.PASS,
                f"The AWS credentials in use are {arn} (account {self.account})"
                + (f"; checking the permissions of {principal}." if principal else "."),
                subject=checked,
            )
        ]
        if who.kind == "root":
            return [
                Finding(
                    "iam.identity",
                    Status.FAIL,
                    f"{checked} is the account's root user: no IAM policy limits it.",
                    "Delete the root user's access keys; run the app with a role that has "
                    "only the runtime policy (`manage.py kms_policy`).",
                    checked,
                )
            ]
        probes = self._probes()
        if not who.kind:
            reason = f"{checked} is not an IAM user or role ARN"
            return [*found, *_cannot_tell(checked, reason)]
        progress.step(f"checking the permissions of {checked}")
        # The key policies read (key.mfa): their statements naming the identity count.
        policies = {k.arn: k.policy for k in self.found.values() if k.policy is not None}
        try:
            decisions, method = decide(
                self.aws, who, [*probes.needed, *probes.excess], self.account, policies
            )
        except CannotTell as why:
            return [*found, *_cannot_tell(checked, str(why))]
        active = self.found.get(self.conf.active_alias)
        if active is not None and active.policy is None:
            method += f"; the key policy of alias/{active.target.name} could not be read"
        if probes.note:
            method += f"; {probes.note}"
        return [*found, *_permission_findings(checked, probes, decisions, method)]

    def _probes(self) -> _Probes:
        """The requests to evaluate: what signing with the active alias needs, and what a
        runtime identity should not be able to do."""
        active = self.found.get(self.conf.active_alias)
        region, account = self.aws.region, self.account or "*"
        probes = _Probes()
        other_key = f"arn:aws:kms:{region}:{account}:key/00000000-0000-0000-0000-000000000000"
        foreign = {
            "kms:ResourceAliases": (),
            "kms:ViaService": (),
            "kms:KeySpec": (iam.ENVELOPE_KEY_SPEC,),
        }
        mfa = {"aws:MultiFactorAuthPresent": ("true",)}
        if active is not None:
            alias = f"alias/{active.target.name}"
            info = active.info
            mode = info.mode if info else kinds.for_spec(active.metadata.get("KeySpec", ""))
            path = (info.parameter if info else "") or validation.parameter_path(
                self.conf.ssm_prefix, active.target.name
            )
            parameter = f"arn:aws:ssm:{region}:{account}:parameter{path}"
            context: dict[str, tuple[str, ...]] = {
                "kms:ResourceAliases": self._aliases(active, probes),
                "kms:KeySpec": (str(active.metadata.get("KeySpec", "SYMMETRIC_DEFAULT")),),
                "kms:ViaService": (),
                **{f"aws:ResourceTag/{k}": (v,) for k, v in (active.tags or {}).items()},
            }
            tagged = ("aws:resourcetag/",) if active.tags is not None else ()
            on_key = f"the key of {alias}"
            for action in ("kms:DescribeKey", "kms:ListResourceTags"):
                probes.needed.append(Probe(action, active.arn, on_key, context, tagged))
            if mode == keys.NATIVE:
                for action in ("kms:Sign", "kms:GetPublicKey"):
                    probes.needed.append(Probe(action, active.arn, on_key, context, tagged))
            else:
                probes.needed.append(Probe("ssm:GetParameter", parameter, path, {}, ()))
                via = {**context, "kms:ViaService": (f"ssm.{region}.amazonaws.com",)}
                probes.needed.append(
                    Probe("kms:Decrypt (through SSM)", active.arn, on_key, via, tagged)
                )
            for action in _EXCESS_ON_KEY:
                probes.excess.append(Probe(action, active.arn, on_key, {**context, **mfa}, tagged))
            writes = {"ssm:Overwrite": (), **mfa}
            for action in ("ssm:PutParameter", "ssm:DeleteParameter"):
                probes.excess.append(Probe(action, parameter, path, writes, ()))
        else:
            probes.missing = f"alias/{self.conf.active_alias} was not found, so its key is unknown"
        created = {
            "aws:RequestTag/ManagedBy": (keys.MANAGED_BY,),
            "aws:TagKeys": (keys.TAG_MANAGED_BY,),
            **mfa,
        }
        probes.excess.append(Probe("kms:CreateKey", "*", "", created, ()))
        elsewhere = ("aws:resourcetag/",)
        for action, spec in (("kms:Decrypt", iam.ENVELOPE_KEY_SPEC), ("kms:Sign", native.KEY_SPEC)):
            probes.excess.append(
                Probe(
                    action,
                    other_key,
                    "another application's key",
                    {**foreign, "kms:KeySpec": (spec,), **mfa},
                    elsewhere,
                )
            )
        probes.excess.append(
            Probe(
                "ssm:GetParameter",
                f"arn:aws:ssm:{region}:{account}:parameter{_OTHER_PARAMETER}",
                "another application's parameter",
                mfa,
                (),
            )
        )
        return probes

    def _aliases(self, key: _Key, probes: _Probes) -> tuple[str, ...]:
        """Every alias of ``key`` (``kms:ResourceAliases``): ListAliases, one request
        (pages followed); the alias it was found by alone when that fails."""
        alias = f"alias/{key.target.name}"
        try:
            listed = [
                str(a["AliasName"])
                for a in self.aws.paginate("kms", "ListAliases", alias, "Aliases", KeyId=key.key_id)
                if a.get("AliasName")
            ]
        except exc.ConfioKMSError as error:
            why = error.cause or error.message
            probes.note = (
                f"the other aliases of its key could not be listed ({why}): only {alias} "
                "is counted in kms:ResourceAliases"
            )
            return (alias,)
        return tuple(sorted({alias, *listed}))

    # -- CloudTrail ---------------------------------------------------------------

    def cloudtrail(self) -> list[Finding]:
        region = self.aws.region
        progress.step(f"checking CloudTrail in {region}")
        try:
            trails = self.aws.call(
                "cloudtrail", "DescribeTrails", region, includeShadowTrails=True
            ).get("trailList", [])
        except exc.ConfioKMSError as error:
            return [_unknown("cloudtrail", region, error)]
        create = (
            "Create a multi-region trail that logs all management events: `aws cloudtrail "
            "create-trail --name confio-audit --s3-bucket-name BUCKET --is-multi-region-trail` "
            "and `aws cloudtrail start-logging --name confio-audit`."
        )
        if not trails:
            return [
                Finding(
                    "cloudtrail",
                    Status.FAIL,
                    f"No CloudTrail trail covers {region}: KMS requests are kept only in the "
                    "90-day event history.",
                    create,
                    region,
                )
            ]
        observed: list[_Trail] = []
        for trail in trails:
            arn = trail.get("TrailARN") or trail.get("Name", "")
            try:
                # A multi-region trail from another region is asked in its home region.
                home = self._in_region(str(trail.get("HomeRegion") or region))
                status = home.call("cloudtrail", "GetTrailStatus", arn, Name=arn)
                selectors = (
                    home.call("cloudtrail", "GetEventSelectors", arn, TrailName=arn)
                    if status.get("IsLogging")
                    else None
                )
            except exc.ConfioKMSError as error:
                observed.append(_Trail(trail, error=error.cause or error.message))
                continue
            observed.append(_Trail(trail, status, selectors))
        return [_trails_finding(region, observed, create)]

    def _in_region(self, region: str) -> AWSClients:
        """Clients like ``self.aws`` in another region (the session, endpoint and settings
        are the same); built once per region, in this thread."""
        if region == self.aws.region:
            return self.aws
        if region not in self.regional:
            self.regional[region] = AWSClients(
                region,
                endpoint_url=self.conf.endpoint_url,
                session=self.aws.session,
                services=("cloudtrail",),
                options=self.aws.options,
            )
        return self.regional[region]

    # -- a test signature -----------------------------------------------------------

    def signature(self) -> list[Finding]:
        name = self.conf.active_alias
        alias = f"alias/{name}"
        if name not in self.found:
            return [
                Finding(
                    "signature",
                    Status.UNKNOWN,
                    f"Not tried: {alias} could not be looked up (see key.exists).",
                    subject=alias,
                )
            ]
        progress.step(f"signing a test transaction with {alias} (nothing is submitted)")
        try:
            signer = self._signer(name)
            params = chain.offline_params(signer.network)
            txn = transaction.PaymentTxn(
                signer.address, params, signer.address, 0, note=b"confio-kms doctor"
            )
            # The library verifies every signature against the account before returning it.
            signed = signer.sign_transaction(txn)
        except exc.ConfioKMSError as error:
            return [Finding("signature", Status.FAIL, _one_line(error), error.fix or "", alias)]
        return [
            Finding(
                "signature",
                Status.PASS,
                f"{alias} signed a 0-ALGO self-payment ({signed.get_txid()}) offline; its "
                f"signature verifies against {signer.signer_address}. Nothing was submitted.",
                subject=alias,
            )
        ]

    def _signer(self, name: str) -> KMSSigner:
        if self.session is None:
            return conf.kms_signer(name)
        # As conf.kms_signer builds it, with the session given to run().
        return KMSSigner(
            name,
            self.conf.region,
            endpoint_url=self.conf.endpoint_url,
            session=self.session,
            ssm_prefix=self.conf.ssm_prefix,
            options=self.aws.options,
        )

    # -- what needs a person --------------------------------------------------------

    def reminders(self) -> list[Finding]:
        envelope = [
            f"alias/{k.target.name}"
            for k in self.found.values()
            if k.metadata.get("KeySpec", "SYMMETRIC_DEFAULT") == iam.ENVELOPE_KEY_SPEC
        ]
        native = [
            f"alias/{k.target.name}"
            for k in self.found.values()
            if k.metadata.get("KeySpec", "SYMMETRIC_DEFAULT") != iam.ENVELOPE_KEY_SPEC
        ]
        found = []
        if envelope:
            found.append(
                _reminder(
                    "reminder.backups",
                    f"An offline copy of the backup mnemonic of {', '.join(envelope)} exists "
                    "(paper or an offline vault) and was read back once; nothing can show it "
                    "again.",
                )
            )
        if native:
            found.append(
                _reminder(
                    "reminder.recovery",
                    f"{', '.join(native)} has no backup: a recovery plan (a multi-region replica "
                    "key, or an offline account to rekey from) exists and was tried "
                    "(docs/native.md).",
                )
            )
        found += [
            _reminder(
                "reminder.old_copies",
                "Old copies of the mnemonic are gone: .env backups, laptops, CI logs, secret "
                "stores. An imported key signs for whoever kept one, until it is rotated.",
            ),
            _reminder(
                "reminder.break_glass",
                f"The break-glass procedure (role {iam.BREAK_GLASS_ROLE}, with MFA) is written "
                "down, its MFA devices are held by more than one person, and it was rehearsed.",
            ),
            _reminder(
                "reminder.alerts",
                "Someone is alerted on ScheduleKeyDeletion, DisableKey and PutKeyPolicy of the "
                "confio keys (an EventBridge rule or a CloudWatch alarm on the trail).",
            ),
            _reminder(
                "reminder.team",
                "The team knows the runbooks: rotation and the recovery drill "
                "(docs/rotation.md), and what to do after a suspected compromise (rotate).",
            ),
        ]
        return found


# --- CloudTrail ---------------------------------------------------------------------


@dataclass
class _Trail:
    """One trail as DescribeTrails lists it, with what GetTrailStatus and (when it is
    logging) GetEventSelectors answered, or why they could not be asked."""

    trail: Mapping[str, Any]
    status: Mapping[str, Any] | None = None
    selectors: Mapping[str, Any] | None = None
    error: str = ""


def _trails_finding(region: str, observed: Sequence[_Trail], create: str) -> Finding:
    """The cloudtrail finding from the trails covering ``region``: whether a logging
    trail records each of ``KMS_EVENTS``, and whether its logs reach their bucket."""
    covered: dict[str, bool | None] = {event: False for event, _ in KMS_EVENTS}
    notes: list[str] = []
    undelivered: list[_Trail] = []
    logging = False
    for seen in observed:
        name = seen.trail.get("Name", "?")
        if seen.error or seen.status is None:
            notes.append(f"{name}: cannot tell ({seen.error})")
            for event in covered:
                covered[event] = either(covered[event], None)
            continue
        if not seen.status.get("IsLogging") or seen.selectors is None:
            notes.append(f"{name} is not logging")
            continue
        logging = True
        if seen.status.get("LatestDeliveryError"):
            undelivered.append(seen)
            notes.append(
                f"{name} reports a log delivery error ({seen.status['LatestDeliveryError']})"
            )
        for event, read_only in KMS_EVENTS:
            covered[event] = either(covered[event], captures(seen.selectors, event, read_only))
        notes.append(f"{name} is logging{selector_summary(seen.selectors)}")
    logged = [e for e, v in covered.items() if v is True]
    missing = [e for e, v in covered.items() if v is False]
    unclear = [e for e, v in covered.items() if v is None]
    summary = "; ".join(notes)
    delivery = _delivery_fix(undelivered)
    if not missing and not unclear:
        if undelivered:
            failing = ", ".join(str(t.trail.get("Name", "?")) for t in undelivered)
            return Finding(
                "cloudtrail",
                Status.WARN,
                f"CloudTrail records KMS's read and write management events in {region} "
                f"({', '.join(logged)}), but CloudTrail reports that it could not deliver "
                f"log files to the bucket of {failing}: {summary}.",
                delivery,
                region,
            )
        return Finding(
            "cloudtrail",
            Status.PASS,
            f"CloudTrail records KMS's read and write management events in {region} "
            f"({', '.join(logged)}): {summary}.",
            subject=region,
        )
    fix = (
        "Log all management events (ReadWriteType All) without excluding "
        "kms.amazonaws.com on a logging trail: `aws cloudtrail put-event-selectors "
        '--trail-name NAME --event-selectors \'[{"ReadWriteType": "All", '
        '"IncludeManagementEvents": true}]\'`, and `aws cloudtrail start-logging`.'
    )
    if delivery:
        fix += f" {delivery}"
    if not logged:
        return Finding(
            "cloudtrail",
            Status.FAIL if not unclear else Status.UNKNOWN,
            f"No logging trail records KMS events in {region}: {summary}.",
            fix if logging else create,
            region,
        )
    gaps = []
    if missing:
        gaps.append(f"not recorded: {', '.join(missing)}")
    if unclear:
        gaps.append(f"cannot tell for {', '.join(unclear)}")
    return Finding(
        "cloudtrail",
        Status.WARN,
        f"CloudTrail records {', '.join(logged)} in {region} but {'; '.join(gaps)} "
        f"({summary}). KMS Sign and Decrypt are read-only management events.",
        fix,
        region,
    )


def _delivery_fix(undelivered: Sequence[_Trail]) -> str:
    """How to let CloudTrail deliver the logs of these trails ("" for none)."""
    fixes = []
    for seen in undelivered:
        name = str(seen.trail.get("Name", "NAME"))
        bucket = seen.trail.get("S3BucketName") or "BUCKET"
        text = (
            f"Let CloudTrail write {name}'s logs: the policy of bucket {bucket} must allow the "
            "service principal cloudtrail.amazonaws.com s3:GetBucketAcl on the bucket and "
            "s3:PutObject on its AWSLogs/ prefix"
        )
        if seen.trail.get("KmsKeyId"):
            text += (
                f", and the key policy of the trail's KMS key ({seen.trail['KmsKeyId']}) must "
                "allow it kms:GenerateDataKey*"
            )
        text += (
            f"; or point the trail at a bucket that does (`aws cloudtrail update-trail --name "
            f"{name} --s3-bucket-name BUCKET`). `aws cloudtrail get-trail-status --name {name}` "
            "shows the error."
        )
        fixes.append(text)
    return " ".join(fixes)


# --- keys ---------------------------------------------------------------------------


def _targets(settings: config.KMSSettings) -> list[_Target]:
    """The configured aliases: the active network's (it must exist), the other network's
    (when configured or present), and the old scripts' KMS_KEY_ALIAS and
    KMS_ADMIN_KEY_ALIAS (when set), with the address settings each must match."""
    sponsor = config.configured_sponsor_address()
    expected_sponsor = [("ALGORAND_SPONSOR_ADDRESS", sponsor)] if sponsor else []
    active = settings.confio_env
    targets = [
        _Target(settings.active_alias, [settings.active_alias_setting], active, expected_sponsor)
    ]
    legacy = config.setting("KMS_KEY_ALIAS", "", str)
    admin = config.setting("KMS_ADMIN_KEY_ALIAS", "", str)
    admin_address = config.setting("ALGORAND_ADMIN_ADDRESS", "", str)
    extra: list[tuple[str, str, list[tuple[str, str]]]] = []
    if legacy:
        extra.append((legacy, "KMS_KEY_ALIAS", expected_sponsor))
    if admin:
        expected = (
            [("ALGORAND_ADMIN_ADDRESS", admin_address)] if admin_address else expected_sponsor
        )
        extra.append((admin, "KMS_ADMIN_KEY_ALIAS", expected))
    for raw, setting_name, expected in extra:
        try:
            name = validation.alias_name(raw)
        except exc.InvalidAliasError:
            continue  # the compat layer reports it when it is used
        _merge(targets, _Target(name, [setting_name], active, list(expected)))
    for network in networks.DEPLOYMENT_NETWORKS:
        if network == active:
            continue
        setting_name = config.ALIAS_SETTING[network]
        explicit = config.setting(setting_name, None, str) is not None
        _merge(
            targets,
            _Target(settings.alias_for(network), [setting_name], network, required=explicit),
        )
    return targets


def _merge(targets: list[_Target], new: _Target) -> None:
    for target in targets:
        if target.name == new.name:
            target.settings += [s for s in new.settings if s not in target.settings]
            target.expected += [e for e in new.expected if e not in target.expected]
            target.required = target.required or new.required
            return
    targets.append(new)


# A multi-Region primary key scheduled for deletion while replica keys remain.
PENDING_REPLICA_DELETION = "PendingReplicaDeletion"


def _state(alias: str, metadata: Mapping[str, Any]) -> Finding:
    key_id, state = metadata["KeyId"], str(metadata.get("KeyState", "?"))
    if state == "Enabled":
        return Finding("key.state", Status.PASS, f"The key of {alias} is Enabled.", subject=alias)
    cancel = (
        f"Cancel the deletion: `aws kms cancel-key-deletion --key-id {key_id}` (the key is "
        f"then Disabled), then `aws kms enable-key --key-id {key_id}`."
    )
    if state == keys.PENDING_DELETION:
        when = metadata.get("DeletionDate")
        on = f" (deleted on {when:%Y-%m-%d})" if isinstance(when, datetime) else ""
        return Finding(
            "key.state",
            Status.FAIL,
            f"The key of {alias} ({key_id}) is pending deletion{on}: signing fails.",
            cancel,
            alias,
        )
    if state == PENDING_REPLICA_DELETION:
        # A multi-Region primary key scheduled for deletion: its waiting period starts
        # once its replica keys are deleted; waiting never makes it Enabled again.
        days = metadata.get("PendingDeletionWindowInDays")
        period = f"its waiting period of {days} days" if days else "its waiting period"
        return Finding(
            "key.state",
            Status.FAIL,
            f"The key of {alias} ({key_id}) is a multi-Region primary key scheduled for "
            f"deletion (PendingReplicaDeletion): {period} starts when its last replica key "
            "is deleted, and it cannot sign until the deletion is cancelled: signing fails.",
            cancel,
            alias,
        )
    return Finding(
        "key.state",
        Status.FAIL,
        f"The key of {alias} ({key_id}) is {state}, not Enabled: signing fails.",
        f"Enable it: `aws kms enable-key --key-id {key_id}`."
        if state == "Disabled"
        else "Wait for the key to become Enabled, or point the alias at an Enabled key.",
        alias,
    )


def _network(target: _Target, alias: str, tags: Mapping[str, str]) -> Finding:
    raw = tags.get(keys.TAG_NETWORK, "")
    tagged = keys.tagged_network(dict(tags))
    settings = " / ".join(target.settings)
    tag_it = (
        f"Tag the key: `aws kms tag-resource --key-id KEY_ID --tags "
        f"TagKey={keys.TAG_NETWORK},TagValue={target.network}`."
    )
    if raw and not tagged:
        return Finding(
            "key.network",
            Status.FAIL,
            f"The key of {alias} is tagged {keys.TAG_NETWORK}={raw!r}, which is not a network.",
            f"Correct the tag to {target.network} if the key is a {target.network} key.",
            alias,
        )
    if tagged == target.network:
        return Finding(
            "key.network",
            Status.PASS,
            f"The key of {alias} is tagged {keys.TAG_NETWORK}={tagged}, as {settings} expects.",
            subject=alias,
        )
    if tagged:
        return Finding(
            "key.network",
            Status.FAIL,
            f"The key of {alias} is tagged {keys.TAG_NETWORK}={tagged}, but {settings} names it "
            f"for {target.network}: the signing policy refuses {target.network} transactions.",
            f"Point {settings} at a {target.network} key (`manage.py kms_list`); correct the "
            "tag only if it is wrong.",
            alias,
        )
    derived = config.network_of_alias(target.name) or networks.UNKNOWN
    if derived == target.network:
        return Finding(
            "key.network",
            Status.WARN,
            f"The key of {alias} has no {keys.TAG_NETWORK} tag; its network ({derived}) comes "
            "from the alias name only.",
            tag_it,
            alias,
        )
    return Finding(
        "key.network",
        Status.FAIL,
        f"The key of {alias} has no {keys.TAG_NETWORK} tag and its alias stands for "
        f"{derived}, not {target.network}.",
        tag_it,
        alias,
    )


def _mfa(policy: Mapping[str, Any], alias: str, key: _Key, region: str) -> Finding:
    """Whether the key policy denies deletion and disabling (and key-policy changes)
    without MFA to everyone, as ``iam.key_policy`` does."""
    covered = {action: denied_without_mfa(policy, action, key.arn) for action in _MFA_CHECKED}
    # As `kms_policy --key-policy` prints them, with the key id the doctor knows.
    save = shlex.join(
        [
            "manage.py", "kms_policy", "--key-policy",
            "--account-id", _arn_account(key.arn) or "ACCOUNT",
        ]
    )  # fmt: skip
    put = iam.put_key_policy_command(region, key.key_id)
    generate = (
        f"Save confio's key policy: `{save} > {iam.KEY_POLICY_FILE}`, then apply it from an "
        f"MFA session: `{put}` (docs/install.md, step 5)."
    )
    deletion = covered["kms:ScheduleKeyDeletion"]
    if not deletion:
        return Finding(
            "key.mfa",
            Status.FAIL,
            f"The key policy of {alias} does not require MFA to schedule its deletion.",
            generate,
            alias,
        )
    gaps = []
    for action, cases in covered.items():
        if cases == WITHOUT_MFA:
            continue
        if not cases:
            gaps.append(f"{action} is not denied without MFA")
        elif "absent" not in cases:
            gaps.append(
                f"{action} is denied with Bool, so requests signed with long-term access keys "
                "(no aws:MultiFactorAuthPresent) escape it (use BoolIfExists)"
            )
        else:
            gaps.append(f"{action} is denied only to requests without the MFA key")
    if not gaps:
        return Finding(
            "key.mfa",
            Status.PASS,
            f"The key policy of {alias} denies {', '.join(_MFA_CHECKED)} without MFA, to everyone.",
            subject=alias,
        )
    return Finding(
        "key.mfa",
        Status.WARN,
        f"The key policy of {alias} requires MFA only in part: {'; '.join(gaps)}.",
        generate,
        alias,
    )


_MFA_CHECKED = (*iam.MFA_ACTIONS, "kms:PutKeyPolicy")


# --- permissions --------------------------------------------------------------------

# What a runtime identity should not do on the key (asked from an MFA session).
_EXCESS_ON_KEY = (
    "kms:ScheduleKeyDeletion",
    "kms:CancelKeyDeletion",
    "kms:DisableKey",
    "kms:PutKeyPolicy",
    "kms:CreateGrant",
    "kms:UpdateAlias",
    "kms:DeleteAlias",
)
# A parameter outside the configured prefix: another application's.
_OTHER_PARAMETER = "/another-application/private-key"


@dataclass
class _Probes:
    """What the permissions check asks: the requests signing needs, those a runtime
    identity should not be able to make, and why ``needed`` is empty when it is."""

    needed: list[Probe] = field(default_factory=list)
    excess: list[Probe] = field(default_factory=list)
    missing: str = ""
    note: str = ""  # what was not known when they were made


def _permission_findings(
    subject: str, probes: _Probes, decisions: Sequence[Decision], method: str
) -> list[Finding]:
    needed = list(zip(probes.needed, decisions[: len(probes.needed)], strict=True))
    excess = list(zip(probes.excess, decisions[len(probes.needed) :], strict=True))
    runtime = (
        f"Attach the runtime policy from `manage.py kms_policy` to {subject} (docs/install.md, "
        "step 5)."
    )
    found = []
    if probes.missing:
        found.append(
            Finding(
                "iam.signing",
                Status.UNKNOWN,
                f"Cannot tell what signing needs: {probes.missing}.",
                subject=subject,
            )
        )
    else:
        denied = [f"{p.label} ({d.reason})" for p, d in needed if d.result == DENIED]
        unclear = [f"{p.label} ({d.reason})" for p, d in needed if d.result == UNDETERMINED]
        if denied:
            found.append(
                Finding(
                    "iam.signing",
                    Status.FAIL,
                    f"{subject} may not make requests signing needs: {'; '.join(denied)} "
                    f"({method}).",
                    runtime,
                    subject,
                )
            )
        elif unclear:
            found.append(
                Finding(
                    "iam.signing",
                    Status.UNKNOWN,
                    f"Cannot tell whether {subject} may make every request signing needs: "
                    f"{'; '.join(unclear)} ({method}).",
                    "Check those conditions by hand, or run IAM's policy simulator.",
                    subject,
                )
            )
        else:
            granted = sorted({d.reason.removeprefix("allowed by ") for _, d in needed} - {""})
            by = f", allowed by {', '.join(granted)}" if granted else ""
            found.append(
                Finding(
                    "iam.signing",
                    Status.PASS,
                    f"{subject} may make every request signing needs: "
                    f"{_grouped(p for p, _ in needed)}{by} ({method}).",
                    subject=subject,
                )
            )
    allowed = [f"{p.label} ({d.reason})" for p, d in excess if d.result == ALLOWED]
    unclear = [f"{p.label} ({d.reason})" for p, d in excess if d.result == UNDETERMINED]
    narrow = (
        f"Give {subject} only the runtime policy from `manage.py kms_policy`; administration "
        "(deletion, key policies, creating keys and parameters) belongs to an operator role."
    )
    if allowed:
        found.append(
            Finding(
                "iam.least_privilege",
                Status.FAIL,
                f"{subject} may do what a runtime identity should not: {'; '.join(allowed)} "
                f"({method}).",
                narrow,
                subject,
            )
        )
    elif unclear:
        found.append(
            Finding(
                "iam.least_privilege",
                Status.WARN,
                f"{subject} may be able to do what a runtime identity should not, depending on "
                f"conditions: {'; '.join(unclear)} ({method}).",
                narrow,
                subject,
            )
        )
    else:
        found.append(
            Finding(
                "iam.least_privilege",
                Status.PASS,
                f"{subject} may not: {_grouped(probes.excess)} ({method}).",
                subject=subject,
            )
        )
    return found


def _grouped(probes: Iterable[Probe]) -> str:
    """ "A, B on X; C on Y": the probes' actions grouped by what they are on."""
    groups: dict[str, list[str]] = {}
    for probe in probes:
        groups.setdefault(probe.on, []).append(probe.action)
    return "; ".join(
        f"{', '.join(actions)} on {on}" if on else ", ".join(actions)
        for on, actions in groups.items()
    )


def _cannot_tell(subject: str, reason: str) -> list[Finding]:
    fix = (
        "Grant the identity iam:SimulatePrincipalPolicy on its own ARN, or run "
        "`manage.py kms_doctor --principal ARN` with an operator's credentials."
    )
    return [
        Finding("iam.signing", Status.UNKNOWN, f"Cannot tell: {reason}.", fix, subject),
        Finding("iam.least_privilege", Status.UNKNOWN, f"Cannot tell: {reason}.", fix, subject),
    ]


# --- small helpers ------------------------------------------------------------------


def _kind(metadata: Mapping[str, Any]) -> str:
    return kinds.for_spec(str(metadata.get("KeySpec", "SYMMETRIC_DEFAULT"))) or "unknown kind"


def _arn_account(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 5 else ""


def _one_line(error: exc.ConfioKMSError) -> str:
    text = error.message + (f" ({error.said}: {error.cause})" if error.cause else "")
    return " ".join(text.split())


def _unknown(check: str, subject: str, error: exc.ConfioKMSError) -> Finding:
    denied = isinstance(error, exc.AccessDeniedError)
    return Finding(
        check,
        Status.UNKNOWN,
        f"Cannot tell: {_one_line(error)}",
        (error.fix or "") if not denied else f"{error.fix} (or run the doctor as an operator)",
        subject,
    )


def _reminder(check: str, message: str) -> Finding:
    return Finding(check, Status.REMINDER, message)
