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

One module per check area, run in this order on one ``Checkup`` (state.py: what the
checks found so far): ``configured`` (the settings), ``key_checks`` (each configured
alias and its key), ``leftovers`` (keys interrupted creations left: orphan keys,
stuck aliases), ``access`` (the identity's permissions, decided by
``confio_kms.ops.permissions`` on the requests ``access._probes`` lists), ``trail``
(CloudTrail, read by ``confio_kms.ops.cloudtrail``), ``signature`` (the test signature
and the reminders); ``report`` holds the report types. An ``iam.signing`` failure for
the caller's own credentials that the test signature contradicts is ``unknown``.

The doctor reads no setting itself: the Django shell hands in a ``Configuration``
(``confio_kms.management.commands.kms_doctor.configuration``).
"""

from __future__ import annotations

from collections.abc import Callable

import boto3

from confio_kms.common import exceptions as exc
from confio_kms.ops.doctor.access import check_permissions, signed_anyway
from confio_kms.ops.doctor.configured import check_settings
from confio_kms.ops.doctor.key_checks import check_keys
from confio_kms.ops.doctor.leftovers import check_unfinished
from confio_kms.ops.doctor.paused import check_pauses
from confio_kms.ops.doctor.report import Finding, Report, Status
from confio_kms.ops.doctor.signature import reminders, signature
from confio_kms.ops.doctor.state import Checkup, Configuration, DoctorClients, SignerFactory
from confio_kms.ops.doctor.trail import check_cloudtrail
from confio_kms.ops.permissions import principal_arn

__all__ = ["Configuration", "Finding", "Report", "SignerFactory", "Status", "run"]

SERVICES = ("sts", "iam", "cloudtrail")


def run(
    configuration: Callable[[], Configuration],
    *,
    session: boto3.Session | None = None,
    principal: str | None = None,
) -> Report:
    """Check the configured deployment against the live account.

    ``configuration``: reads the settings to check (the Django shell's
    ``confio_kms.management.commands.kms_doctor.configuration``); a
    ``ConfigurationError`` it raises is the one finding ``settings.valid``.
    ``session``: the boto3 session for every request (the test signature's too); by
    default the one the configuration's signer factory builds. ``principal``: the ARN
    of an IAM user or role whose permissions to check instead of the caller's (for an
    operator checking the app's role). Raises ``ConfigurationError`` only when no AWS
    client can be built (a missing ``AWS_PROFILE``) or ``principal`` is not an IAM
    user or role ARN.
    """
    target = principal_arn(principal) if principal else None
    try:
        conf = configuration()
    except exc.ConfigurationError as error:
        return Report((Finding("settings.valid", Status.FAIL, error.message, error.fix or ""),))
    aws = DoctorClients(  # an endpoint that never answers costs one deadline, not one per check
        conf.region,
        endpoint_url=conf.endpoint_url,
        session=session,
        services=SERVICES,
        options=conf.options,
    )
    doctor = Checkup(conf, aws, session)
    findings = [
        *check_settings(doctor),
        *check_keys(doctor),
        *check_pauses(doctor),
        *check_unfinished(doctor),
        *check_permissions(doctor, target),
        *check_cloudtrail(doctor),
        *signature(doctor),
        *reminders(doctor),
    ]
    if target is None:
        findings = signed_anyway(findings)
    return Report(tuple(findings), aws.region)
