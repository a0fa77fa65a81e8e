"""Celery tasks that sign with the sponsor key (see ``example_project/celery.py`` for
why the signer is built per worker process)."""

from __future__ import annotations

from algosdk import encoding
from celery import shared_task

from confio_kms.factory import kms_signer


@shared_task
def sign_transaction(unsigned: str) -> str:
    """Sign one transaction with the active network's key, under its signing policy.

    ``unsigned`` and the result are msgpack in base64 (``algosdk.encoding.
    msgpack_encode``): JSON-serializable, so Celery's default serializer carries them.
    A refusal or AWS failure raises confio_kms's typed error, which the task's result
    carries to the caller.
    """
    txn = encoding.msgpack_decode(unsigned)
    return str(encoding.msgpack_encode(kms_signer().sign_transaction(txn)))
