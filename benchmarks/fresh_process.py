"""One fresh process: the first signature (cold start) or one address lookup.

Run by benchmarks/run.py with a JSON job as its argument; prints a JSON result:
the AWS requests made (counted with botocore's before-send event) and the seconds
from building the signer to the first signature (or address), after imports.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

start_imports = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3  # noqa: E402
import django  # noqa: E402
from django.conf import settings  # noqa: E402

job = json.loads(sys.argv[1])
settings.configure(
    # Processes sharing a cache share SECRET_KEY, as a deployment does: entries are
    # authenticated under a key derived from it.
    SECRET_KEY="confio-kms-benchmarks-shared-secret-key",
    INSTALLED_APPS=["confio_kms"],
    CACHES={"default": job["cache"]},
    USE_TZ=True,
)
django.setup()

from algosdk import transaction  # noqa: E402

from benchmarks.baseline import ScriptSigner  # noqa: E402
from confio_kms import KMSSigner  # noqa: E402
from confio_kms.algorand.networks import GENESIS_HASH, GENESIS_ID  # noqa: E402

imports = time.perf_counter() - start_imports
operations: list[str] = []
session = boto3.Session(**job["credentials"])
session.events.register(
    "before-send", lambda event_name, **kw: operations.append(event_name.rsplit(".", 1)[1])
)

start = time.perf_counter()
signer: KMSSigner | ScriptSigner
if job["kind"] == "baseline":
    signer = ScriptSigner(job["alias"], job["region"], job["endpoint"], session)
else:
    signer = KMSSigner(job["alias"], job["region"], endpoint_url=job["endpoint"], session=session)
address = signer.address
if job["mode"] == "cold":
    params = transaction.SuggestedParams(
        1000, 1, 1000, GENESIS_HASH["testnet"], GENESIS_ID["testnet"], flat_fee=True
    )
    signer.sign_transactions([transaction.PaymentTxn(address, params, address, 0)])
seconds = time.perf_counter() - start
print(json.dumps({"operations": operations, "seconds": seconds, "imports": imports}))
