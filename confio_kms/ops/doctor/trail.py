"""The CloudTrail check: a logging trail covering the region records KMS's events
(``confio_kms.ops.cloudtrail`` reads the selectors) and its logs reach their bucket."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confio_kms.common import exceptions as exc
from confio_kms.common import progress
from confio_kms.ops.cloudtrail import KMS_EVENTS, captures, either, selector_summary
from confio_kms.ops.doctor.report import Finding, Status, unknown
from confio_kms.ops.doctor.state import Checkup


def check_cloudtrail(doctor: Checkup) -> list[Finding]:
    region = doctor.aws.region
    progress.step(f"checking CloudTrail in {region}")
    try:
        trails = doctor.aws.call(
            "cloudtrail", "DescribeTrails", region, includeShadowTrails=True
        ).get("trailList", [])
    except exc.ConfioKMSError as error:
        return [unknown("cloudtrail", region, error)]
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
            home = doctor.in_region(str(trail.get("HomeRegion") or region))
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


@dataclass
class _Trail:
    """One trail as DescribeTrails lists it, with what GetTrailStatus and (when it is
    logging) GetEventSelectors answered, or why they could not be asked."""

    trail: Mapping[str, Any]
    status: Mapping[str, Any] | None = None
    selectors: Mapping[str, Any] | None = None
    error: str = ""


@dataclass
class _Coverage:
    """What the trails covering a region record of ``KMS_EVENTS`` (True, False, or None:
    cannot tell), a note per trail, the trails whose logs were not delivered, and
    whether any trail is logging."""

    covered: dict[str, bool | None] = field(
        default_factory=lambda: {event: False for event, _ in KMS_EVENTS}
    )
    notes: list[str] = field(default_factory=list)
    undelivered: list[_Trail] = field(default_factory=list)
    logging: bool = False

    def add(self, seen: _Trail) -> None:
        name = seen.trail.get("Name", "?")
        if seen.error or seen.status is None:
            self.notes.append(f"{name}: cannot tell ({seen.error})")
            for event in self.covered:
                self.covered[event] = either(self.covered[event], None)
            return
        if not seen.status.get("IsLogging") or seen.selectors is None:
            self.notes.append(f"{name} is not logging")
            return
        self.logging = True
        if seen.status.get("LatestDeliveryError"):
            self.undelivered.append(seen)
            self.notes.append(
                f"{name} reports a log delivery error ({seen.status['LatestDeliveryError']})"
            )
        for event, read_only in KMS_EVENTS:
            captured = captures(seen.selectors, event, read_only)
            self.covered[event] = either(self.covered[event], captured)
        self.notes.append(f"{name} is logging{selector_summary(seen.selectors)}")


def _trails_finding(region: str, observed: Sequence[_Trail], create: str) -> Finding:
    """The cloudtrail finding from the trails covering ``region``: whether a logging
    trail records each of ``KMS_EVENTS``, and whether its logs reach their bucket."""
    coverage = _Coverage()
    for seen in observed:
        coverage.add(seen)
    covered, undelivered, logging = coverage.covered, coverage.undelivered, coverage.logging
    logged = [e for e, v in covered.items() if v is True]
    missing = [e for e, v in covered.items() if v is False]
    unclear = [e for e, v in covered.items() if v is None]
    summary = "; ".join(coverage.notes)
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
