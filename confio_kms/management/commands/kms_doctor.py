from __future__ import annotations

from argparse import ArgumentParser
from collections.abc import Iterator
from typing import Any

from django.core.management.base import CommandError

from confio_kms.management.base import KMSCommand
from confio_kms.ops import doctor


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
        report = doctor.run(principal=options["principal"])
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
