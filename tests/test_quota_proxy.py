"""benchmarks/quota_proxy.py throttles like Parameter Store, and benchmarks/quota_run.py
produces its report.

No upper bound on any time: the proxy's delay is checked as a lower bound only, and
the throttling tests use a bucket that takes seconds to refill one token (or a fake
clock), so a slow machine cannot let an extra request through.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from benchmarks.quota_proxy import QuotaProxy, TokenBucket, default_quotas
from confio_kms.sandbox import SANDBOX_REGION, LocalAWS

ROOT = Path(__file__).resolve().parents[1]
ONE_ATTEMPT = Config(retries={"mode": "standard", "total_max_attempts": 1})


def client(service: str, endpoint: str) -> Any:
    """A client that tries each request once, so every throttled answer shows."""
    return boto3.Session().client(
        service,  # type: ignore[call-overload]
        region_name=SANDBOX_REGION,
        endpoint_url=endpoint,
        config=ONE_ATTEMPT,
    )


@pytest.fixture
def proxy(local_aws: LocalAWS) -> Iterator[QuotaProxy]:
    # Burst 5; one new token every 20 s: no request in a test gets one.
    with QuotaProxy(local_aws.url, rate=0.05, burst=5, delay=0) as running:
        yield running


def test_the_bucket_throttles_the_41st_request_within_a_second() -> None:
    now = [100.0]
    bucket = TokenBucket(40, 40, clock=lambda: now[0])
    assert [bucket.take() for _ in range(40)] == [True] * 40
    now[0] += 0.01
    assert bucket.take() is False  # the 41st, 10 ms later
    now[0] += 1 / 40  # a token comes back every 25 ms
    assert bucket.take() is True
    assert bucket.take() is False
    now[0] += 60  # never more than the burst
    assert sum(bucket.take() for _ in range(50)) == 40


def test_get_parameter_past_the_burst_is_answered_throttling_exception(
    proxy: QuotaProxy,
) -> None:
    ssm = client("ssm", proxy.url)
    ssm.put_parameter(Name="/quota/p", Value="secret", Type="SecureString")
    outcomes = []
    for _ in range(8):
        try:
            ssm.get_parameter(Name="/quota/p", WithDecryption=True)
            outcomes.append("ok")
        except ClientError as error:
            assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert error.response["Error"]["Message"] == "Rate exceeded"
            outcomes.append(error.response["Error"]["Code"])
    # PutParameter took the first of the 5 tokens: it shares Parameter Store's quota.
    assert outcomes == ["ok"] * 4 + ["ThrottlingException"] * 4
    # GetParameters shares the bucket, as it shares Parameter Store's quota.
    with pytest.raises(ClientError) as caught:
        ssm.get_parameters(Names=["/quota/p"], WithDecryption=True)
    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    expected = {
        "forwarded": {"PutParameter": 1, "GetParameter": 4},
        "throttled": {"GetParameter": 4, "GetParameters": 1},
        "upstream_errors": 0,
        "faulted": {},
    }
    assert proxy.stats() == expected
    with urllib.request.urlopen(f"{proxy.url}/__stats", timeout=10) as answer:
        assert json.loads(answer.read()) == expected


def outcome(call: Any, **params: Any) -> str:
    """ "ok", or the code and message AWS answered."""
    try:
        call(**params)
    except ClientError as error:
        return f"{error.response['Error']['Code']}: {error.response['Error']['Message']}"
    return "ok"


KMS_RATE_EXCEEDED = (
    "ThrottlingException: You have exceeded the rate at which you may call KMS. "
    "Reduce the frequency of your calls."
)


def test_each_quota_has_its_own_bucket_and_answer(local_aws: LocalAWS) -> None:
    # A clock that never moves: no token ever comes back, so the counts are exact.
    quotas = default_quotas(2, 2, kms_rate=3, ecc_rate=1, clock=lambda: 0.0)
    with QuotaProxy(local_aws.url, quotas=quotas, delay=0) as running:
        kms, ssm = client("kms", running.url), client("ssm", running.url)
        symmetric = kms.create_key()["KeyMetadata"]["KeyId"]
        ecc = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"][
            "KeyId"
        ]
        blob = client("kms", local_aws.url).encrypt(KeyId=symmetric, Plaintext=b"k")[
            "CiphertextBlob"
        ]
        # Parameter Store: 2 tokens, PutParameter and GetParameter share them.
        ssm.put_parameter(Name="/quota/each", Value="v", Type="SecureString", KeyId=symmetric)
        got = [outcome(ssm.get_parameter, Name="/quota/each") for _ in range(2)]
        assert got == ["ok", "ThrottlingException: Rate exceeded"]
        # KMS symmetric: 3 tokens, untouched by Parameter Store's empty bucket.
        decrypts = [outcome(kms.decrypt, CiphertextBlob=blob) for _ in range(4)]
        assert decrypts == ["ok"] * 3 + [KMS_RATE_EXCEEDED]
        # KMS ECC: 1 token, shared by GetPublicKey and Sign, untouched by Decrypt's.
        message = {"KeyId": ecc, "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256"}
        assert outcome(kms.get_public_key, KeyId=ecc) == "ok"
        assert outcome(kms.sign, **message) == KMS_RATE_EXCEEDED
        for _ in range(5):  # no quota emulated for the rest
            kms.describe_key(KeyId=ecc)
        stats = running.stats()
    assert stats["throttled"] == {"GetParameter": 1, "Decrypt": 1, "Sign": 1}
    assert {k: stats["forwarded"].get(k) for k in ("PutParameter", "GetParameter", "Decrypt")} == {
        "PutParameter": 1,
        "GetParameter": 1,
        "Decrypt": 3,
    }
    assert stats["forwarded"]["GetPublicKey"] == 1 and "Sign" not in stats["forwarded"]
    assert stats["forwarded"]["DescribeKey"] == 5 and stats["forwarded"]["CreateKey"] == 2
    assert [q["name"] for q in running.settings["quotas"]] == [
        "Parameter Store",
        "KMS symmetric",
        "KMS ECC",
    ]


def test_the_throttled_answer_is_aws_json(proxy: QuotaProxy) -> None:
    host = urllib.parse.urlsplit(proxy.url)
    assert host.hostname is not None
    body = json.dumps({"Name": "/quota/none"})
    for _ in range(6):  # 5 tokens, then empty
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        conn.request(
            "POST",
            "/",
            body,
            {
                "X-Amz-Target": "AmazonSSM.GetParameter",
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
    assert answer.status == 400
    assert answer.getheader("Content-Type") == "application/x-amz-json-1.1"
    assert json.loads(data) == {"__type": "ThrottlingException", "message": "Rate exceeded"}


def test_other_operations_are_forwarded_untouched_and_never_throttled(
    proxy: QuotaProxy, local_aws: LocalAWS
) -> None:
    kms_direct, kms_proxied = client("kms", local_aws.url), client("kms", proxy.url)
    key_id = kms_proxied.create_key(Description="through the proxy")["KeyMetadata"]["KeyId"]
    kms_proxied.create_alias(AliasName="alias/quota", TargetKeyId=key_id)
    ssm = client("ssm", proxy.url)
    ssm.put_parameter(Name="/quota/q", Value="v", Type="SecureString", KeyId=key_id)
    for _ in range(6):  # empties the bucket
        with contextlib.suppress(ClientError):
            ssm.get_parameter(Name="/quota/q", WithDecryption=True)
    for _ in range(10):  # many more than the burst: none throttled
        proxied = kms_proxied.describe_key(KeyId="alias/quota")
        direct = kms_direct.describe_key(KeyId="alias/quota")
        assert proxied["KeyMetadata"] == direct["KeyMetadata"]
        ssm.describe_parameters()
    stats = proxy.stats()
    assert stats["throttled"] == {"GetParameter": 2}  # 5 tokens: PutParameter and 4 gets
    assert stats["forwarded"]["DescribeKey"] == 10
    assert stats["forwarded"]["DescribeParameters"] == 10


def test_every_answer_waits_at_least_the_delay(local_aws: LocalAWS) -> None:
    with QuotaProxy(local_aws.url, rate=0.05, burst=2, delay=0.1) as slow:
        ssm = client("ssm", slow.url)
        ssm.put_parameter(Name="/quota/d", Value="v", Type="SecureString")
        for _ in range(2):  # forwarded, then throttled: both cost the round trip
            start = time.perf_counter()
            with contextlib.suppress(ClientError):
                ssm.get_parameter(Name="/quota/d", WithDecryption=True)
            assert time.perf_counter() - start >= 0.1
        assert slow.stats()["throttled"] == {"GetParameter": 1}


def test_a_quick_quota_run_reports_its_rows_and_verifies_every_signature(
    tmp_path: Path,
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "CONFIO_", "KMS_", "DJANGO_SETTINGS"))
    }
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "quota_run.py"),
            "--seconds",
            "0.5",
            "--settle",
            "0.2",
            "--cells",
            "1x2",
            "--approaches",
            "direct,direct-guard",
            "--out",
            str(tmp_path / "quota.md"),
            "--json",
            str(tmp_path / "quota.json"),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    result = json.loads((tmp_path / "quota.json").read_text())
    cell, guarded = result["cells"]
    assert (cell["approach"], cell["processes"], cell["threads"]) == ("direct", 1, 2)
    for one in (cell, guarded):
        assert one["signatures"] > 0 and one["signatures_all"] >= one["signatures"]
        assert one["verify_failures"] == 0 and one["unfinished"] == 0
        assert one["errors"] == {} and one["warmup_errors"] == {}
    # The guarded cell's workers signed through the guard: its counter took every call.
    assert guarded["approach"] == "direct-guard" and cell["guard_calls"] is None
    assert guarded["guard_calls"] == guarded["signatures_all"]
    # through the proxy: envelope keys decrypt with KMS once the ciphertext is read
    assert cell["proxy_all"]["forwarded"]["Decrypt"] > 0
    assert "GetParameter" not in cell["proxy_window"]["forwarded"]  # read once, at warm-up
    assert result["proxy"]["rate"] == 40 and result["proxy"]["burst"] == 40
    rates = {q["name"]: q["rate"] for q in result["proxy"]["quotas"]}
    assert rates == {"Parameter Store": 40, "KMS symmetric": 10_000, "KMS ECC": 1_000}
    page = (tmp_path / "quota.md").read_text()
    assert page.startswith("## Throughput under AWS quotas")
    assert "| KMSSigner, direct KMS Decrypt | 1 x 2 |" in page
    assert "| KMSSigner, direct, guard + limits (SQLite WAL) | 1 x 2 |" in page
    assert "0 failed verification | met |" in page
    assert "### Reading" in page


# Faults: benchmarks/proxy_faults.py, injected by the proxy on request.


def raw_request(url: str, target: str, body: str = "{}", timeout: float = 30) -> Any:
    """One request on a fresh connection; the response object (read it) or the error."""
    host = urllib.parse.urlsplit(url)
    assert host.hostname is not None
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=timeout)
    conn.request("POST", "/", body, {"X-Amz-Target": target, "Content-Type": AWS_JSON})
    return conn, conn.getresponse()


AWS_JSON = "application/x-amz-json-1.1"


def post_fault(url: str, spec: dict[str, Any]) -> int:
    request = urllib.request.Request(
        f"{url}/__fault", json.dumps(spec).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_error_fault_answers_500_internal_failure_for_its_operations_only(
    proxy: QuotaProxy,
) -> None:
    ssm = client("ssm", proxy.url)
    ssm.put_parameter(Name="/fault/e", Value="v", Type="SecureString")
    proxy.fault("error", operations=["AmazonSSM.GetParameter"])
    with pytest.raises(ClientError) as caught:
        ssm.get_parameter(Name="/fault/e", WithDecryption=True)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert caught.value.response["Error"]["Code"] == "InternalFailure"
    ssm.describe_parameters()  # another operation: untouched
    proxy.clear_faults()
    assert ssm.get_parameter(Name="/fault/e", WithDecryption=True)["Parameter"]["Value"] == "v"
    stats = proxy.stats()
    assert stats["faulted"] == {"error": 1}
    assert stats["forwarded"]["GetParameter"] == 1  # the faulted one never reached moto


def test_throttle_fault_throttles_every_matching_request_whatever_the_bucket(
    proxy: QuotaProxy,
) -> None:
    kms = client("kms", proxy.url)
    kms.list_keys()
    proxy.fault("throttle", operations=["TrentService.ListKeys"], count=3)
    for _ in range(3):
        with pytest.raises(ClientError) as caught:
            kms.list_keys()
        assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    kms.list_keys()  # the fault is spent after its count
    stats = proxy.stats()
    assert stats["faulted"] == {"throttle": 3}
    assert stats["forwarded"]["ListKeys"] == 2 and stats["throttled"] == {}


def test_outage_closes_the_connection_without_an_answer(proxy: QuotaProxy) -> None:
    proxy.fault("outage")
    with pytest.raises(http.client.RemoteDisconnected):
        raw_request(proxy.url, "TrentService.ListKeys")
    assert proxy.stats()["faulted"] == {"outage": 1}
    assert proxy.stats()["forwarded"] == {}


def test_reset_sends_a_tcp_rst(proxy: QuotaProxy) -> None:
    proxy.fault("reset", operations=["TrentService.ListKeys"])
    with pytest.raises(ConnectionResetError):
        raw_request(proxy.url, "TrentService.ListKeys")
    assert proxy.stats()["faulted"] == {"reset": 1}


def test_hang_holds_the_request_until_cleared_then_closes_it(proxy: QuotaProxy) -> None:
    outcome: list[object] = []
    proxy.fault("hang", operations=["TrentService.ListKeys"])

    def call() -> None:
        try:
            raw_request(proxy.url, "TrentService.ListKeys")
            outcome.append("answered")
        except Exception as error:
            outcome.append(error)

    worker = threading.Thread(target=call)
    worker.start()
    wait_for(lambda: proxy.stats()["faulted"].get("hang") == 1)
    client("kms", proxy.url).list_aliases()  # other operations still answered meanwhile
    assert worker.is_alive() and outcome == []  # still held
    proxy.clear_faults()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], http.client.RemoteDisconnected)
    assert "ListKeys" not in proxy.stats()["forwarded"]


def test_trickle_forwards_then_answers_slowly_and_clearing_sends_the_rest(
    proxy: QuotaProxy,
) -> None:
    ssm = client("ssm", proxy.url)
    ssm.put_parameter(Name="/fault/t", Value="trickled", Type="SecureString")
    proxy.fault("trickle", operations=["AmazonSSM.GetParameter"], bytes_per_second=2000, count=1)
    start = time.perf_counter()
    answer = ssm.get_parameter(Name="/fault/t", WithDecryption=True)
    took = time.perf_counter() - start
    assert answer["Parameter"]["Value"] == "trickled"
    # A lower bound only: at least the headers and the body, a byte every 0.5 ms.
    assert took >= 200 / 2000
    # At 1 byte/s: the status line arrives byte by byte; clearing sends the rest.
    proxy.fault("trickle", contains="/fault/t", bytes_per_second=1)
    host = urllib.parse.urlsplit(proxy.url)
    sock = socket.create_connection((host.hostname, host.port), timeout=30)
    body = json.dumps({"Name": "/fault/t", "WithDecryption": True}).encode()
    head = "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: AmazonSSM.GetParameter\r\n"
    sock.sendall(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert sock.recv(100) == b"H"  # the first byte alone
    proxy.clear_faults()
    received = b"H"
    while not complete(received):
        chunk = sock.recv(4096)
        assert chunk, f"the connection closed before the whole answer: {received!r}"
        received += chunk
    sock.close()
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")  # moto's answer, forwarded
    assert proxy.stats()["faulted"] == {"trickle": 2}


def complete(raw: bytes) -> bool:
    """Whether ``raw`` holds a whole HTTP answer (headers and Content-Length bytes)."""
    head, found, body = raw.partition(b"\r\n\r\n")
    if not found:
        return False
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return len(body) >= length


def test_faults_are_set_and_cleared_over_http(proxy: QuotaProxy) -> None:
    kms = client("kms", proxy.url)
    spec = {"kind": "error", "operations": ["TrentService.ListKeys"]}
    assert post_fault(proxy.url, spec) == 200
    with pytest.raises(ClientError):
        kms.list_keys()
    assert post_fault(proxy.url, {"kind": None}) == 200
    kms.list_keys()
    assert post_fault(proxy.url, {"kind": "flood"}) == 400
    assert post_fault(proxy.url, {"kind": "hang", "operations": "TrentService.Sign"}) == 400
    assert post_fault(proxy.url, {"kind": "hang", "cont": 1}) == 400
    with urllib.request.urlopen(f"{proxy.url}/__stats", timeout=10) as answer:
        assert json.loads(answer.read())["faulted"] == {"error": 1}


def test_leaving_the_proxy_ends_a_hang(local_aws: LocalAWS) -> None:
    outcome: list[object] = []
    with QuotaProxy(local_aws.url, delay=0) as running:
        running.fault("hang")

        def call() -> None:
            try:
                raw_request(running.url, "TrentService.ListKeys")
            except Exception as error:
                outcome.append(error)

        worker = threading.Thread(target=call)
        worker.start()
        wait_for(lambda: running.stats()["faulted"].get("hang") == 1)
    worker.join(timeout=30)
    assert not worker.is_alive() and len(outcome) == 1


def wait_for(condition: Any, limit: float = 30) -> None:
    """Poll until ``condition()``; the limit only stops a hung test."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.01)
