"""AWS client setup and the translation of AWS failures into confio_kms errors.

One ``AWSClients`` per manager or signer: the boto3 session and its KMS and
SSM clients are built once and reused (boto3 clients are thread-safe; sessions
are not, so nothing builds clients after construction). A caller that needs more
services (``kms_doctor``: STS, IAM, CloudTrail) names them at construction; they get
the same region, endpoint, timeouts, retries and error translation.

Time limits (``Options``; the settings named are their Django defaults): each request
waits at most ``CONFIO_KMS_CONNECT_TIMEOUT`` to connect and ``CONFIO_KMS_READ_TIMEOUT``
for an answer, and is tried at most ``CONFIO_KMS_MAX_ATTEMPTS`` times (botocore's
standard retries). A signing call has a
deadline, ``CONFIO_KMS_CALL_DEADLINE`` from its start (``AWSClients.bounded``): its lookups,
requests and retries share it, and once it has passed (or a retry's backoff would
reach it) nothing new is sent and the call fails with ``DeadlineExceededError``.
Any other request gets the same deadline on its own. The deadline covers the whole
answer, not only each read: a request runs in a worker thread
(``confio_kms.core.workers``) and its caller stops waiting at the deadline, even when
the answer trickles in byte by byte; the abandoned request keeps its thread until
its answer ends (``abandoned_requests()``). Each socket read waits at most the read
timeout or the time left to the deadline, whichever is shorter. The clients carry their options
(``AWSClients.options``): what is built on them (lookups, key kinds, the audit trail)
reads its options there.
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import boto3
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from botocore.parsers import ResponseParserError
from botocore.retries import standard

from confio_kms.common import exceptions as exc
from confio_kms.common.redaction import install_redaction
from confio_kms.core import pacing, telemetry, workers
from confio_kms.core.aws_errors import THROTTLED as _THROTTLED
from confio_kms.core.aws_errors import error_cause, translate_client_error
from confio_kms.core.options import DEFAULTS, Options


def client_config(options: Options) -> Config:
    """botocore's configuration for new clients, from ``options``."""
    return Config(  # type: ignore[call-arg]  # stubs lag botocore: user_agent_appid
        retries={"mode": "standard", "total_max_attempts": options.max_attempts},
        connect_timeout=options.connect_timeout,
        read_timeout=options.read_timeout,
        # Native keys sign a group with concurrent requests (one per transaction).
        max_pool_connections=32,
        # The library builds every request's parameters itself; skipping botocore's
        # validation saves about 8% of its CPU per request (measured: 297 -> 272 us).
        parameter_validation=False,
        user_agent_appid="confio-kms",
    )


class _Budget:
    """The deadline of the AWS request running in this thread, whether it cut a retry,
    and when it first asked the pacer for a turn (``confio_kms.core.pacing``)."""

    __slots__ = ("arrived", "cut", "deadline", "retry_until")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.cut = False
        self.arrived: float | None = None
        self.retry_until = deadline  # the call's throttle wait, when shorter


# Set by AWSClients._call around each botocore call, read by its retry handler (which
# botocore runs in the calling thread).
_budget: ContextVar[_Budget | None] = ContextVar("confio_kms_budget", default=None)


class _DeadlineRetries:
    """botocore's standard retry handler, except that no retry starts at or after the
    deadline (when the backoff would reach it, the request fails now), and a throttled
    request waits the short throttling backoff instead of botocore's (up to 1 s on the
    first retry): a quota refills in tens of milliseconds."""

    def __init__(self, inner: standard.RetryHandler) -> None:
        self._inner = inner

    def needs_retry(self, **kwargs: Any) -> float | bool | None:
        delay: float | bool | None = self._inner.needs_retry(**kwargs)
        if delay is not None and delay is not False and _throttled(kwargs.get("response")):
            delay = min(float(delay), throttle_backoff(int(kwargs.get("attempts", 1)) - 1))
        budget = _budget.get()
        if budget is None or delay is None or delay is False:
            return delay
        if time.monotonic() + float(delay) >= budget.deadline:
            budget.cut = True
            return False  # not None: later handlers must not retry either
        return delay


def throttle_backoff(retry: int) -> float:
    """Seconds to wait before the ``retry``-th retry (0-based) of a throttled request."""
    return float(min(THROTTLE_BACKOFF * 2**retry, 1.0) * random.uniform(0.5, 1.0))


def _throttled(response: Any) -> bool:
    """Whether botocore's (http response, parsed) pair is a throttling error that names
    no wait of its own (AWS's ``x-amz-retry-after`` is honoured as botocore reads it)."""
    try:
        if "x-amz-retry-after" in response[0].headers:
            return False
        return bool(response[1]["Error"]["Code"] in _THROTTLED)
    except (TypeError, KeyError, IndexError, AttributeError):
        return False


def abandoned_requests() -> int:
    """AWS requests given up at their deadline whose answer has not ended yet (each
    holds a worker thread until it does): a gauge for monitoring."""
    return workers.abandoned()


def _bound_reads(client: Any, read_timeout: float) -> None:
    """Each socket read of a request waits at most the time left to its deadline
    (botocore's per-request ``read_timeout``), so a silent answer frees its thread then."""

    def shorten(request: Any, **kwargs: Any) -> None:
        budget = _budget.get()
        context = getattr(request, "context", None)
        if budget is not None and context is not None:
            left = budget.deadline - time.monotonic()
            context["read_timeout"] = max(0.01, min(read_timeout, left))

    name = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-send.{name}", shorten, unique_id="confio-kms-reads")


def _bound_retries(client: Any, attempts: int) -> None:
    """Replace the client's standard retry handler by one that honours deadlines."""
    name = client.meta.service_model.service_id.hyphenize()
    unique_id = f"retry-config-{name}"
    # Registering under the id botocore already used only builds the handler ...
    inner = standard.register_retry_handler(client, max_attempts=attempts)
    # ... which then takes the place of botocore's own, wrapped.
    client.meta.events.unregister(f"needs-retry.{name}", unique_id=unique_id)
    client.meta.events.register(
        f"needs-retry.{name}", _DeadlineRetries(inner).needs_retry, unique_id=unique_id
    )


_CARRIES_SECRET = {"PutParameter"}
# Seconds botocore's own retries of a throttled request may wait for their turns under
# pacing (confio_kms.core.pacing), before CONFIO_KMS_THROTTLE_WAIT's retries.
PACED_RETRIES = 1.0
# First backoff when AWS throttles; it doubles per retry, up to 1 s, with jitter.
THROTTLE_BACKOFF = 0.05


# What every AWSClients builds; ``services`` adds to it.
SERVICES = ("kms", "ssm")
# Where the endpoint is configured, for the fixes of connection errors.
ENDPOINT_SETTINGS = "KMS_REGION and KMS_ENDPOINT_URL / AWS_ENDPOINT_URL (unset against AWS)"


class AWSClients:
    """The boto3 session and the KMS and SSM clients of one manager or signer.

    ``region_name`` falls back to ``options.region`` (``KMS_REGION`` in Django), then
    the session's region (``AWS_DEFAULT_REGION``, the profile), then the guide's
    ``eu-central-2`` (``confio_kms.core.options.region``); ``endpoint_url`` falls back
    to ``AWS_ENDPOINT_URL`` as boto3 reads it. Timeouts, attempts and the call deadline
    come from ``options`` (default ``Options()``: the plain defaults). ``services``
    names further services to build clients for (``sts``,
    ``iam``, ``cloudtrail``): same region and endpoint (IAM is global, but a configured
    endpoint serves it too), reached through ``call`` like KMS and SSM.

    An ``AWS_PROFILE`` that names no profile raises ``ConfigurationError``.
    """

    # The monotonic time after which no request starts (``bounded``); None: each
    # request gets ``call_deadline`` seconds on its own.
    deadline: float | None = None

    def __init__(
        self,
        region_name: str | None = None,
        *,
        endpoint_url: str | None = None,
        session: boto3.Session | None = None,
        services: Iterable[str] = (),
        options: Options | None = None,
    ) -> None:
        install_redaction()
        self.options = options if options is not None else DEFAULTS
        attempts = self.options.max_attempts
        settings = client_config(self.options)
        self.call_deadline = self.options.call_deadline
        self.throttle_wait = self.options.throttle_wait
        # Used by envelope keys.
        self.coalescing = self.options.coalescing
        self.endpoint_url = endpoint_url
        try:
            self.region = self.options.region_for(
                region_name, session.region_name if session is not None else None
            )
            self.session = session or boto3.Session()
            # Any: boto3's stubs type client() per literal service name.
            build: Any = self.session.client
            self.clients: dict[str, Any] = {
                name: build(
                    name, region_name=self.region, endpoint_url=endpoint_url, config=settings
                )
                for name in dict.fromkeys((*SERVICES, *services))
            }
        except ProfileNotFound as error:
            raise _missing_profile(str(error.kwargs.get("profile", ""))) from None
        self.kms = self.clients["kms"]
        self.ssm = self.clients["ssm"]
        for client in self.clients.values():
            _bound_retries(client, attempts)
            _bound_reads(client, self.options.read_timeout)
            telemetry.watch(client)
            if self.options.pacing:
                pacing.watch(client, self.scope, _budget.get, self.options.pacing_dir)
        # Loggers created while building the clients get the filter too.
        install_redaction()

    def bounded(self, seconds: float | None = None) -> AWSClients:
        """These clients, for one call: every request through the copy shares one
        deadline, ``seconds`` (default ``CONFIO_KMS_CALL_DEADLINE``) from now."""
        # A copy of the instance dict: copy.copy's generic __reduce_ex__ path cost
        # several times as much, once per signing call.
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        if seconds is not None:
            view.call_deadline = seconds
        view.deadline = time.monotonic() + view.call_deadline
        return view

    @functools.cached_property
    def scope(self) -> str:
        """Names the AWS endpoint these clients talk to, for cache keys (fixed when the
        clients are built)."""
        return f"{self.region}|{self.kms.meta.endpoint_url}"

    def call(self, service: str, operation: str, resource: str, **params: Any) -> dict[str, Any]:
        """Call ``operation`` (e.g. ``"DescribeKey"``) and translate its failures.

        ``resource`` names what the request is about (an alias, a path) in errors.
        """
        if operation not in _CARRIES_SECRET:
            return self._call(service, operation, resource, params)
        try:
            return self._call(service, operation, resource, params)
        except exc.ConfioKMSError as error:
            failure = error
        # The request's parameters hold a private key, and so do botocore's frames in
        # the original traceback: error reporters record both. Raise without them.
        params.clear()
        failure.__cause__ = failure.__context__ = failure.__traceback__ = None
        raise failure

    def paginate(
        self, service: str, operation: str, resource: str, items: str, **params: Any
    ) -> Iterator[dict[str, Any]]:
        """Every item of ``items`` across the pages of a KMS list operation."""
        marker: str | None = None
        while True:
            page = self.call(
                service, operation, resource, **params, **({"Marker": marker} if marker else {})
            )
            yield from page.get(items, [])
            marker = page.get("NextMarker")
            if not page.get("Truncated") or not marker:
                return

    def _call(
        self, service: str, operation: str, resource: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        client = self.clients[service]
        seconds = self.call_deadline
        if self.deadline is None:
            budget = _Budget(time.monotonic() + seconds)
        else:
            budget = _Budget(self.deadline)
            if time.monotonic() >= budget.deadline:
                raise self._deadline_error(seconds, service, operation, resource, "")
        budget.retry_until = min(
            budget.deadline, time.monotonic() + PACED_RETRIES + self.throttle_wait
        )
        token = _budget.set(budget)
        try:
            response = workers.run(
                lambda: self._send(client, operation, params, budget),
                budget.deadline - time.monotonic(),
                f"AWS {service}:{operation} on {resource}",
            )
        except workers.Expired:
            budget.cut = True  # the abandoned request retries nothing more
            raise self._deadline_error(
                seconds, service, operation, resource, "", unanswered=True
            ) from None
        except pacing.Refused as refused:
            if refused.retry:
                throttled = ClientError({"Error": {"Code": "ThrottlingException"}}, operation)
                raise translate_client_error(throttled, service, operation, resource) from None
            raise self._paced_error(seconds, service, operation, resource, refused) from None
        except (ClientError, BotoCoreError) as error:
            raise self._failure(error, budget, client, service, operation, resource) from error
        except ResponseParserError as error:
            # Not a BotoCoreError: an answer that is no AWS response (an HTML error page
            # from a proxy, or an endpoint that does not implement the operation). Its
            # text quotes the body, so only its type is kept.
            raise exc.AWSError(
                f"AWS {service}:{operation} on {resource} at {client.meta.endpoint_url} "
                "answered with something that is not an AWS response.",
                fix=f"Check {ENDPOINT_SETTINGS}: a proxy or a stand-in may be answering.",
                cause=type(error).__name__,
            ) from None
        finally:
            _budget.reset(token)
        return response

    def _failure(
        self,
        error: ClientError | BotoCoreError,
        budget: _Budget,
        client: Any,
        service: str,
        operation: str,
        resource: str,
    ) -> exc.ConfioKMSError:
        """The confio_kms error for a request that botocore failed with ``error``."""
        seconds = self.call_deadline
        if isinstance(error, ClientError):
            if budget.cut:
                return self._deadline_error(
                    seconds, service, operation, resource, error_cause(error)
                )
            return translate_client_error(error, service, operation, resource)
        if isinstance(error, NoCredentialsError | PartialCredentialsError):
            return exc.CredentialsError(
                f"No usable AWS credentials for {service}:{operation} on {resource}.",
                fix="Configure credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "or an instance/task role).",
            )
        if isinstance(error, BotoConnectionError | HTTPClientError):
            if budget.cut:
                return self._deadline_error(
                    seconds, service, operation, resource, type(error).__name__
                )
            # Connection refused, reset or timed out, after botocore's retries.
            return exc.AWSConnectionError(
                f"Could not reach AWS {service} at {client.meta.endpoint_url} "
                f"for {operation} on {resource}.",
                fix=f"Check the network, {ENDPOINT_SETTINGS}.",
                cause=type(error).__name__,
            )
        return exc.AWSError(
            f"AWS {service}:{operation} on {resource} failed.",
            cause=type(error).__name__,
        )

    def _send(
        self, client: Any, operation: str, params: dict[str, Any], budget: _Budget
    ) -> dict[str, Any]:
        """The request, retried while AWS throttles it (after botocore's own retries,
        whose quota sustained throttling exhausts) for up to ``CONFIO_KMS_THROTTLE_WAIT``
        seconds within the deadline: a burst over the quota waits instead of failing."""
        method = getattr(client, xform_name(operation))
        give_up = min(budget.deadline, time.monotonic() + self.throttle_wait)
        for attempt in itertools.count():
            try:
                response: dict[str, Any] = method(**params)
                return response
            except ClientError as error:
                delay = throttle_backoff(attempt)
                throttled = error.response.get("Error", {}).get("Code") in _THROTTLED
                if not throttled or budget.cut or time.monotonic() + delay >= give_up:
                    raise
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _paced_error(
        self, seconds: float, service: str, operation: str, resource: str, refused: pacing.Refused
    ) -> exc.DeadlineExceededError:
        return exc.DeadlineExceededError(
            f"AWS {service}:{operation} on {resource} was not sent: this process paces its "
            f"requests under {refused.quota}, which AWS throttled, and its turn would have "
            f"come {refused.wait:.2f} s later, after the deadline of the signing call "
            f"(CONFIO_KMS_CALL_DEADLINE = {seconds:g} s).",
            fix="Lower the request rate or raise the quota; a longer CONFIO_KMS_CALL_DEADLINE "
            "lets calls wait longer (CONFIO_KMS_PACING = False turns pacing off).",
            cause="ThrottlingException",
        )

    def _deadline_error(
        self,
        seconds: float,
        service: str,
        operation: str,
        resource: str,
        cause: str,
        *,
        unanswered: bool = False,
    ) -> exc.DeadlineExceededError:
        client = self.clients[service]
        deadline = (
            f"the deadline of {'the signing call' if self.deadline is not None else 'the request'}"
            f" (CONFIO_KMS_CALL_DEADLINE = {seconds:g} s)"
        )
        if unanswered:
            message = (
                f"AWS {service}:{operation} on {resource} at {client.meta.endpoint_url} had "
                f"not answered completely when {deadline} passed: the request was abandoned."
            )
        elif cause:
            message = (
                f"AWS {service}:{operation} on {resource} at {client.meta.endpoint_url} "
                f"failed and {deadline} left no time to retry it."
            )
        else:
            message = (
                f"{deadline[0].upper()}{deadline[1:]} had passed before AWS "
                f"{service}:{operation} on {resource}: it was not sent."
            )
        return exc.DeadlineExceededError(
            message,
            fix=f"Check the network, {ENDPOINT_SETTINGS}, and AWS's health; if AWS is "
            "merely slow, raise CONFIO_KMS_CALL_DEADLINE "
            "(CONFIO_KMS_READ_TIMEOUT and CONFIO_KMS_MAX_ATTEMPTS bound each request).",
            cause=cause or None,
        )


def _missing_profile(profile: str) -> exc.ConfigurationError:
    """botocore's ProfileNotFound, as a configuration error naming the profile and where
    it was looked for."""
    named_by = next(
        (
            name
            for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
            if os.environ.get(name) == profile
        ),
        "the boto3 session",
    )
    files = " or ".join(
        os.environ.get(variable) or default
        for variable, default in (
            ("AWS_CONFIG_FILE", "~/.aws/config"),
            ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
        )
    )
    unset = f"unset {named_by}" if named_by.startswith("AWS_") else "pass another profile"
    return exc.ConfigurationError(
        f"The AWS profile {profile!r} ({named_by}) is not defined in {files}.",
        fix=f"Create it (`aws configure --profile {profile}`, or `aws configure sso "
        f"--profile {profile}`), or {unset} to use other credentials (AWS_ACCESS_KEY_ID/"
        "AWS_SECRET_ACCESS_KEY, or an instance/task role).",
    )
