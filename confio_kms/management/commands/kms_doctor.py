from __future__ import annotations

from argparse import ArgumentParser
from collections.abc import Iterator
from typing import Any

import boto3
from django.core.management.base import CommandError

from confio_kms import checks
from confio_kms import factory as conf
from confio_kms import settings as config
from confio_kms.algorand import networks
from confio_kms.management.base import KMSCommand
from confio_kms.ops import doctor
from confio_kms.ops.secrets import MNEMONIC_LIKE
from confio_kms.signers import KMSSigner


def configuration() -> doctor.Configuration:
    """What the doctor checks, read from the settings now (``override_settings`` is
    honoured); ConfigurationError when they are invalid."""
    kms = config.kms_settings()
    legacy_alias, admin_alias, admin_address = config.legacy_names()
    return doctor.Configuration(
        use_kms_signing=kms.use_kms_signing,
        network=kms.confio_env,
        aliases={network: kms.alias_for(network) for network in networks.DEPLOYMENT_NETWORKS},
        alias_settings=dict(config.ALIAS_SETTING),
        explicit=config.explicit_alias_networks(),
        region=kms.region,
        ssm_prefix=kms.ssm_prefix,
        endpoint_url=kms.endpoint_url,
        network_of_alias=config.network_of_alias,
        signer=_signer,
        sponsor_address=config.configured_sponsor_address(),
        legacy_alias=legacy_alias,
        admin_alias=admin_alias,
        admin_address=admin_address,
        # Settings and environment variables named like a mnemonic, seed, phrase or
        # private key, or whose value is an Algorand mnemonic or private key (names only).
        secrets=tuple(checks.secret_names(named=MNEMONIC_LIKE)),
        legacy_mnemonic=config.legacy_mnemonic_configured(),
        options=config.options(),
    )


def _signer(name: str, session: boto3.Session | None) -> KMSSigner:
    if session is None:
        return conf.kms_signer(name)
    # As conf.kms_signer builds it, with the session given to the doctor.
    kms = config.kms_settings()
    return KMSSigner(
        name,
        kms.region,
        endpoint_url=kms.endpoint_url,
        session=session,
        ssm_prefix=kms.ssm_prefix,
        options=config.options(),
    )


def diagnose(
    *, session: boto3.Session | None = None, principal: str | None = None
) -> doctor.Report:
    """``confio_kms.ops.doctor.run`` on the configured deployment: the library call."""
    return doctor.run(configuration, session=session, principal=principal)


class Command(KMSCommand):
    help = (
        "Check the migration checklist and the security practices against the live AWS "
        "account: the configured aliases and their keys, the key policy's MFA, the "
        "identity's permissions, CloudTrail, the settings and a test signature (nothing is "
        "changed or submitted). Exits 1 when a check fails; warnings alone exit 0."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--principal",
            metavar="ARN",
            help="Check the permissions of this IAM user or role instead of the caller's "
            "(for an operator checking the app's role).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = diagnose(principal=options["principal"])
        self.emit(report.as_dict(), lines(report))
        failed = report.failed
        if failed:
            names = ", ".join(f"{f.check} ({f.subject})" if f.subject else f.check for f in failed)
            raise CommandError(
                f"{len(failed)} check{'s' if len(failed) != 1 else ''} failed: {names}"
            )


def lines(report: doctor.Report) -> Iterator[str]:
    """One line per finding (status, check, message, fix), then the counts."""
    width = max((len(f.check) for f in report.findings), default=0)
    for finding in report.findings:
        line = f"{finding.status.value.upper():<8} {finding.check:<{width}}  {finding.message}"
        if finding.fix and finding.status is not doctor.Status.PASS:
            line += f" Fix: {finding.fix}"
        yield line
    counts = report.counts()
    summary = ", ".join(f"{counts[status.value]} {status.value}" for status in doctor.Status)
    yield summary + (f" (region {report.region})" if report.region else "")
