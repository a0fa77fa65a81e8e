"""Keys exactly as Confío's original ``blockchain/kms_manager.py`` wrote them.

The boto3 calls of its ``create_algorand_key`` and ``import_existing_key`` (read
from its source; ../shared/NOTES.md, "Legacy layout"), minus their habit of
re-pointing an existing alias and overwriting an existing parameter, which tests
never need. Nothing here goes through confio_kms.
"""

from __future__ import annotations

import json

import boto3
from algosdk import account, mnemonic


def _store(alias: str, private_key: str, address: str, key_id: str, *, tagged: bool) -> None:
    kms, ssm = boto3.client("kms"), boto3.client("ssm")
    kms.create_alias(AliasName=f"alias/{alias}", TargetKeyId=key_id)
    parameter = {
        "Name": f"/confio/algorand/{alias}/private-key",
        "Description": f"Encrypted Algorand private key for {alias}",
        "Value": private_key,
        "Type": "SecureString",
        "KeyId": key_id,
    }
    if tagged:
        parameter["Tags"] = [
            {"Key": "Project", "Value": "Confio"},
            {"Key": "AlgorandAddress", "Value": address},
        ]
    else:  # the original's overwrite path: no tags on the parameter
        parameter["Overwrite"] = True
    ssm.put_parameter(**parameter)


def create(
    alias: str, description: str = "Sponsor", *, tagged_parameter: bool = True
) -> tuple[str, str, str]:
    """``create_algorand_key(alias, description)``: (private key, address, key id)."""
    private_key, address = account.generate_account()
    response = boto3.client("kms").create_key(
        Description=f"{description} - Algorand Private Key",
        KeyUsage="ENCRYPT_DECRYPT",
        Origin="AWS_KMS",
        Tags=[
            {"TagKey": "Project", "TagValue": "Confio"},
            {"TagKey": "Purpose", "TagValue": "Algorand-Signing"},
            {"TagKey": "Environment", "TagValue": "Production"},
            {"TagKey": "AlgorandAddress", "TagValue": address},
        ],
    )
    key_id = response["KeyMetadata"]["KeyId"]
    _store(alias, private_key, address, key_id, tagged=tagged_parameter)
    return private_key, address, key_id


def import_existing(alias: str, phrase: str, description: str = "Imported") -> tuple[str, str, str]:
    """``import_existing_key(alias, mnemonic, description)``: (private key, address, key id).

    No Environment tag, and an explicit key policy (the original named one IAM user).
    """
    private_key = mnemonic.to_private_key(phrase)
    address = account.address_from_private_key(private_key)
    account_id = boto3.client("sts").get_caller_identity()["Account"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    response = boto3.client("kms").create_key(
        Description=f"{description} - Algorand Private Key",
        KeyUsage="ENCRYPT_DECRYPT",
        Origin="AWS_KMS",
        Policy=json.dumps(policy),
        Tags=[
            {"TagKey": "Project", "TagValue": "Confio"},
            {"TagKey": "Purpose", "TagValue": "Algorand-Signing"},
            {"TagKey": "AlgorandAddress", "TagValue": address},
        ],
    )
    key_id = response["KeyMetadata"]["KeyId"]
    _store(alias, private_key, address, key_id, tagged=True)
    return private_key, address, key_id
