"""The test signature (a 0-ALGO self-payment, signed offline and verified, never
submitted) and the reminders: what needs a person."""

from __future__ import annotations

from algosdk import transaction

from confio_kms.algorand import chain
from confio_kms.algorand.validation import Alias
from confio_kms.common import exceptions as exc
from confio_kms.common import progress
from confio_kms.lifecycle import policies as iam
from confio_kms.ops.doctor.report import Finding, Status, one_line, reminder
from confio_kms.ops.doctor.state import Checkup


def signature(doctor: Checkup) -> list[Finding]:
    name = doctor.conf.active_alias
    alias = str(Alias(name))
    if name not in doctor.found:
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
        signer = doctor.conf.signer(name, doctor.session)
        params = chain.offline_params(signer.network)
        txn = transaction.PaymentTxn(
            signer.address, params, signer.address, 0, note=b"confio-kms doctor"
        )
        # The library verifies every signature against the account before returning it.
        signed = signer.sign_transaction(txn)
    except exc.ConfioKMSError as error:
        return [Finding("signature", Status.FAIL, one_line(error), error.fix or "", alias)]
    return [
        Finding(
            "signature",
            Status.PASS,
            f"{alias} signed a 0-ALGO self-payment ({signed.get_txid()}) offline; its "
            f"signature verifies against {signer.signer_address}. Nothing was submitted.",
            subject=alias,
        )
    ]


def reminders(doctor: Checkup) -> list[Finding]:
    by_kind: dict[bool, list[str]] = {True: [], False: []}  # envelope or not
    for k in doctor.found.values():
        spec = k.metadata.get("KeySpec", "SYMMETRIC_DEFAULT")
        by_kind[spec == iam.ENVELOPE_KEY_SPEC].append(str(Alias(k.target.name)))
    envelope, native = by_kind[True], by_kind[False]
    found = []
    if envelope:
        found.append(
            reminder(
                "reminder.backups",
                f"An offline copy of the backup mnemonic of {', '.join(envelope)} exists "
                "(paper or an offline vault) and was read back once; nothing can show it "
                "again.",
            )
        )
    if native:
        found.append(
            reminder(
                "reminder.recovery",
                f"{', '.join(native)} has no backup: a recovery plan (a multi-region replica "
                "key, or an offline account to rekey from) exists and was tried "
                "(docs/native.md).",
            )
        )
    found += [
        reminder(
            "reminder.old_copies",
            "Old copies of the mnemonic are gone: .env backups, laptops, CI logs, secret "
            "stores. An imported key signs for whoever kept one, until it is rotated.",
        ),
        reminder(
            "reminder.break_glass",
            f"The break-glass procedure (role {iam.BREAK_GLASS_ROLE}, with MFA) is written "
            "down, its MFA devices are held by more than one person, and it was rehearsed.",
        ),
        reminder(
            "reminder.alerts",
            "Someone is alerted on ScheduleKeyDeletion, DisableKey and PutKeyPolicy of the "
            "confio keys (an EventBridge rule or a CloudWatch alarm on the trail).",
        ),
        reminder(
            "reminder.team",
            "The team knows the runbooks: rotation and the recovery drill "
            "(docs/rotation.md), and what to do after a suspected compromise (rotate).",
        ),
    ]
    return found
