"""The permission checks: what the identity may do (``iam.signing``: what signing with
the active alias needs; ``iam.least_privilege``: what a runtime identity should not
do), decided by ``confio_kms.ops.permissions`` on the requests ``probes`` lists."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from confio_kms.algorand import validation
from confio_kms.algorand.validation import Alias
from confio_kms.common import exceptions as exc
from confio_kms.common import progress
from confio_kms.core import keys, kinds, native
from confio_kms.lifecycle import policies as iam
from confio_kms.ops.doctor.report import Finding, Status, unknown
from confio_kms.ops.doctor.state import Checkup, Key
from confio_kms.ops.permissions import (
    ALLOWED,
    DENIED,
    UNDETERMINED,
    CannotTell,
    Decision,
    Probe,
    Who,
    decide,
)


def check_permissions(doctor: Checkup, principal: str | None) -> list[Finding]:
    progress.step("identifying the AWS credentials (sts:GetCallerIdentity)")
    subject = "identity"
    try:
        caller = doctor.aws.call("sts", "GetCallerIdentity", "the credentials in use")
    except exc.ConfioKMSError as error:
        reason = "the credentials could not be identified (sts:GetCallerIdentity failed)"
        return [
            unknown("iam.identity", subject, error),
            *_cannot_tell(principal or subject, reason),
        ]
    arn = str(caller.get("Arn", ""))
    doctor.account = str(caller.get("Account", "")) or doctor.account
    checked = principal or arn
    who = Who.from_arn(checked)
    found = [
        Finding(
            "iam.identity",
            Status.PASS,
            f"The AWS credentials in use are {arn} (account {doctor.account})"
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
    probes = _probes(
        doctor,
    )
    if not who.kind:
        reason = f"{checked} is not an IAM user or role ARN"
        return [*found, *_cannot_tell(checked, reason)]
    progress.step(f"checking the permissions of {checked}")
    # The key policies read (key.mfa): their statements naming the identity count.
    policies = {k.arn: k.policy for k in doctor.found.values() if k.policy is not None}
    try:
        decisions, method = decide(
            doctor.aws,
            who,
            [*probes.needed, *probes.excess, *probes.advised],
            doctor.account,
            policies,
        )
    except CannotTell as why:
        return [*found, *_cannot_tell(checked, str(why))]
    active = doctor.found.get(doctor.conf.active_alias)
    if active is not None and active.policy is None:
        method += f"; the key policy of {Alias(active.target.name)} could not be read"
    if probes.note:
        method += f"; {probes.note}"
    return [*found, *_permission_findings(checked, probes, decisions, method)]


_MFA = {"aws:MultiFactorAuthPresent": ("true",)}


def _probes(doctor: Checkup) -> _Probes:
    """The requests to evaluate: what signing with the active alias needs, and what a
    runtime identity should not be able to do."""
    active = doctor.found.get(doctor.conf.active_alias)
    probes = _Probes()
    if active is not None:
        _on_active_key(doctor, active, probes)
    else:
        probes.missing = f"{Alias(doctor.conf.active_alias)} was not found, so its key is unknown"
    _elsewhere(doctor, probes)
    return probes


def _on_active_key(doctor: Checkup, active: Key, probes: _Probes) -> None:
    """What signing with ``active`` needs, and what a runtime identity should not do on
    it and its parameter."""
    region, account = doctor.aws.region, doctor.account or "*"
    alias = str(Alias(active.target.name))
    info = active.info
    kind = info.kind if info else kinds.for_spec(active.metadata.get("KeySpec", ""))
    path = (info.parameter if info else "") or validation.parameter_path(
        doctor.conf.ssm_prefix, active.target.name
    )
    parameter = f"arn:aws:ssm:{region}:{account}:parameter{path}"
    context: dict[str, tuple[str, ...]] = {
        "kms:ResourceAliases": _aliases(doctor, active, probes),
        "kms:KeySpec": (str(active.metadata.get("KeySpec", "SYMMETRIC_DEFAULT")),),
        "kms:ViaService": (),
        **{f"aws:ResourceTag/{k}": (v,) for k, v in (active.tags or {}).items()},
    }
    # No request on the key but Decrypt carries an encryption context.
    tagged = ("aws:resourcetag/", *_NO_CONTEXT) if active.tags is not None else _NO_CONTEXT
    on_key = f"the key of {alias}"
    for action in ("kms:DescribeKey", "kms:ListResourceTags"):
        probes.needed.append(Probe(action, active.arn, on_key, context, tagged))
    if kind == keys.NATIVE:
        for action in ("kms:Sign", "kms:GetPublicKey"):
            probes.needed.append(Probe(action, active.arn, on_key, context, tagged))
    else:
        probes.needed.append(Probe("ssm:GetParameter", parameter, path, {}, ()))
        sealed = {**context, **encryption_context(parameter)}
        via = {**sealed, "kms:ViaService": (f"ssm.{region}.amazonaws.com",)}
        # Signing decrypts the ciphertext directly; through SSM for the fallback path.
        probes.needed.append(Probe(DIRECT_DECRYPT, active.arn, on_key, sealed, tagged))
        probes.needed.append(Probe("kms:Decrypt (through SSM)", active.arn, on_key, via, tagged))
    for action in _EXCESS_ON_KEY:
        probes.excess.append(Probe(action, active.arn, on_key, {**context, **_MFA}, tagged))
    writes = {"ssm:Overwrite": (), **_MFA}
    for action in ("ssm:PutParameter", "ssm:DeleteParameter"):
        probes.excess.append(Probe(action, parameter, path, writes, ()))


def _elsewhere(doctor: Checkup, probes: _Probes) -> None:
    """What a runtime identity should not do beyond its key: create keys, use another
    application's key or parameter."""
    region, account = doctor.aws.region, doctor.account or "*"
    other_key = f"arn:aws:kms:{region}:{account}:key/00000000-0000-0000-0000-000000000000"
    other_parameter = f"arn:aws:ssm:{region}:{account}:parameter{_OTHER_PARAMETER}"
    foreign = {
        "kms:ResourceAliases": (),
        "kms:ViaService": (),
        "kms:KeySpec": (iam.ENVELOPE_KEY_SPEC,),
        **encryption_context(other_parameter),
    }
    created = {
        "aws:RequestTag/ManagedBy": (keys.MANAGED_BY,),
        "aws:TagKeys": (keys.TAG_MANAGED_BY,),
        **_MFA,
    }
    probes.excess.append(Probe("kms:CreateKey", "*", "", created, ()))
    elsewhere = ("aws:resourcetag/", *_NO_CONTEXT)
    for action, spec in (("kms:Decrypt", iam.ENVELOPE_KEY_SPEC), ("kms:Sign", native.KEY_SPEC)):
        probes.excess.append(
            Probe(
                action,
                other_key,
                "another application's key",
                {**foreign, "kms:KeySpec": (spec,), **_MFA},
                elsewhere,
            )
        )
    probes.excess.append(
        Probe(
            "ssm:GetParameter",
            other_parameter,
            "another application's parameter",
            _MFA,
            (),
        )
    )


def _aliases(doctor: Checkup, key: Key, probes: _Probes) -> tuple[str, ...]:
    """Every alias of ``key`` (``kms:ResourceAliases``): ListAliases, one request
    (pages followed); the alias it was found by alone when that fails."""
    alias = str(Alias(key.target.name))
    try:
        listed = [
            str(a["AliasName"])
            for a in doctor.aws.paginate("kms", "ListAliases", alias, "Aliases", KeyId=key.key_id)
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


def encryption_context(parameter: str) -> dict[str, tuple[str, ...]]:
    """The encryption context condition keys of a Decrypt of ``parameter``'s ciphertext
    (Parameter Store's context: its ARN), through SSM or direct."""
    return {
        iam.PARAMETER_ARN_CONTEXT: (parameter,),
        "kms:EncryptionContextKeys": (iam.PARAMETER_ARN,),
    }


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
# Condition keys a request carries only with an encryption context (kms:EncryptionContext:*
# and kms:EncryptionContextKeys): absent unless a probe names them.
_NO_CONTEXT = ("kms:encryptioncontext",)
# Decrypting the parameter's ciphertext with KMS directly (GetParameter without
# decryption, then kms:Decrypt with its PARAMETER_ARN context): no kms:ViaService.
DIRECT_DECRYPT = "kms:Decrypt (direct, with the parameter's encryption context)"


@dataclass
class _Probes:
    """What the permissions check asks: the requests signing needs, those a runtime
    identity should not be able to make, and why ``needed`` is empty when it is."""

    needed: list[Probe] = field(default_factory=list)
    excess: list[Probe] = field(default_factory=list)
    # Advised but not needed: a denial is a warning (none since signing decrypts directly).
    advised: list[Probe] = field(default_factory=list)
    missing: str = ""
    note: str = ""  # what was not known when they were made


def _permission_findings(
    subject: str, probes: _Probes, decisions: Sequence[Decision], method: str
) -> list[Finding]:
    ends = (len(probes.needed), len(probes.needed) + len(probes.excess))
    needed = list(zip(probes.needed, decisions[: ends[0]], strict=True))
    excess = list(zip(probes.excess, decisions[ends[0] : ends[1]], strict=True))
    advised = list(zip(probes.advised, decisions[ends[1] :], strict=True))
    return [
        _signing(subject, probes, needed, method, advised),
        _least_privilege(subject, probes, excess, method),
    ]


Answered = list[tuple[Probe, Decision]]


def _signing(
    subject: str, probes: _Probes, needed: Answered, method: str, advised: Answered
) -> Finding:
    """``iam.signing``: whether every request signing needs is allowed (and a warning
    when what the direct decrypt path needs is not)."""
    if probes.missing:
        return Finding(
            "iam.signing",
            Status.UNKNOWN,
            f"Cannot tell what signing needs: {probes.missing}.",
            subject=subject,
        )
    denied = [f"{p.label} ({d.reason})" for p, d in needed if d.result == DENIED]
    unclear = [f"{p.label} ({d.reason})" for p, d in needed if d.result == UNDETERMINED]
    if denied:
        return _signing_denied(subject, needed, denied, method)
    if unclear:
        return Finding(
            "iam.signing",
            Status.UNKNOWN,
            f"Cannot tell whether {subject} may make every request signing needs: "
            f"{'; '.join(unclear)} ({method}).",
            "Check those conditions by hand, or run IAM's policy simulator.",
            subject,
        )
    return _signing_allowed(subject, needed, method, advised)


def _signing_denied(subject: str, needed: Answered, denied: list[str], method: str) -> Finding:
    """``iam.signing`` failing: the requests signing needs that the policies refuse."""
    runtime = (
        f"Attach the runtime policy from `manage.py kms_policy` to {subject} (docs/install.md, "
        "step 5)."
    )
    if any(p.action == DIRECT_DECRYPT and d.result == DENIED for p, d in needed):
        runtime += (
            " Signing calls kms:Decrypt directly with the parameter's encryption context: "
            "re-apply `manage.py kms_policy --runtime` if the policy allows kms:Decrypt "
            f"only through SSM (kms:ViaService); it allows {iam.PARAMETER_ARN_CONTEXT}."
        )
    return Finding(
        "iam.signing",
        Status.FAIL,
        f"{subject} may not make requests signing needs: {'; '.join(denied)} ({method}).",
        runtime,
        subject,
    )


def _signing_allowed(subject: str, needed: Answered, method: str, advised: Answered) -> Finding:
    """``iam.signing`` when every needed request is allowed: a pass, or a warning when
    the advised direct-decrypt requests are refused."""
    granted = sorted({d.reason.removeprefix("allowed by ") for _, d in needed} - {""})
    by = f", allowed by {', '.join(granted)}" if granted else ""
    refused = [f"{p.label} ({d.reason})" for p, d in advised if d.result != ALLOWED]
    if refused:
        return Finding(
            "iam.signing",
            Status.WARN,
            f"{subject} may make every request signing needs today: "
            f"{_grouped(p for p, _ in needed)}{by}; but not {'; '.join(refused)}: a "
            "policy that allows kms:Decrypt only through SSM (kms:ViaService) refuses "
            f"decrypting the parameter's ciphertext directly ({method}).",
            "Re-apply the runtime policy from `manage.py kms_policy --runtime`: it allows "
            "kms:Decrypt with the parameter's encryption context "
            f"({iam.PARAMETER_ARN_CONTEXT}), through SSM or directly.",
            subject,
        )
    return Finding(
        "iam.signing",
        Status.PASS,
        f"{subject} may make every request signing needs: "
        f"{_grouped(p for p, _ in needed)}{by} ({method}).",
        subject=subject,
    )


def _least_privilege(subject: str, probes: _Probes, excess: Answered, method: str) -> Finding:
    """``iam.least_privilege``: whether none of what a runtime identity should not do is."""
    allowed = [f"{p.label} ({d.reason})" for p, d in excess if d.result == ALLOWED]
    unclear = [f"{p.label} ({d.reason})" for p, d in excess if d.result == UNDETERMINED]
    narrow = (
        f"Give {subject} only the runtime policy from `manage.py kms_policy`; administration "
        "(deletion, key policies, creating keys and parameters) belongs to an operator role."
    )
    if allowed:
        return Finding(
            "iam.least_privilege",
            Status.FAIL,
            f"{subject} may do what a runtime identity should not: {'; '.join(allowed)} "
            f"({method}).",
            narrow,
            subject,
        )
    if unclear:
        return Finding(
            "iam.least_privilege",
            Status.WARN,
            f"{subject} may be able to do what a runtime identity should not, depending on "
            f"conditions: {'; '.join(unclear)} ({method}).",
            narrow,
            subject,
        )
    return Finding(
        "iam.least_privilege",
        Status.PASS,
        f"{subject} may not: {_grouped(probes.excess)} ({method}).",
        subject=subject,
    )


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


def signed_anyway(findings: list[Finding]) -> list[Finding]:
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
