"""The old approach, as the setup guide's scripts sign: the baseline to beat.

Reimplemented here, not imported from anywhere: each signer instance looks up its
address with DescribeKey + ListResourceTags, and each transaction gets a new boto3
SSM client and its own GetParameter with decryption.
"""

from __future__ import annotations

import boto3
from algosdk import transaction


class ScriptSigner:
    """Signs the way the old scripts did: one client and one decrypt per transaction."""

    def __init__(
        self, alias: str, region: str, endpoint_url: str | None, session: boto3.Session
    ) -> None:
        self._session = session
        self._region = region
        self._endpoint_url = endpoint_url
        self._parameter = f"/confio/algorand/{alias}/private-key"
        kms = session.client("kms", region_name=region, endpoint_url=endpoint_url)
        key_id = kms.describe_key(KeyId=f"alias/{alias}")["KeyMetadata"]["KeyId"]
        tags = kms.list_resource_tags(KeyId=key_id)["Tags"]
        self.address = next(t["TagValue"] for t in tags if t["TagKey"] == "AlgorandAddress")

    def sign_transactions(
        self, txns: list[transaction.Transaction]
    ) -> list[transaction.SignedTransaction]:
        signed = []
        for txn in txns:
            ssm = self._session.client(
                "ssm", region_name=self._region, endpoint_url=self._endpoint_url
            )
            value = ssm.get_parameter(Name=self._parameter, WithDecryption=True)
            signed.append(txn._sign(value["Parameter"]["Value"]))
        return signed
