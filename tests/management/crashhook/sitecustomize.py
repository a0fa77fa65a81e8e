"""Test-only fault hook for kms_setup crash tests (on PYTHONPATH of the child only).

CONFIO_TEST_KILL_AFTER_WRITE=N: SIGKILL this process right after the Nth AWS write
has been answered (a botocore after-call handler on every client).
CONFIO_TEST_WRITE_LOG=FILE: append each AWS write's operation name to FILE.
"""

import os
import signal

_KILL = int(os.environ.get("CONFIO_TEST_KILL_AFTER_WRITE", "0") or 0)
_LOG = os.environ.get("CONFIO_TEST_WRITE_LOG", "")
WRITES = {
    "CreateKey", "CreateAlias", "UpdateAlias", "DeleteAlias", "TagResource", "UntagResource",
    "ScheduleKeyDeletion", "PutParameter", "DeleteParameter",
}  # fmt: skip

if _KILL or _LOG:
    import botocore.session

    _count = [0]
    _create_client = botocore.session.Session.create_client

    def _after(model=None, **kwargs):  # type: ignore[no-untyped-def]
        if model is None or model.name not in WRITES:
            return
        _count[0] += 1
        if _LOG:
            with open(_LOG, "a") as log:
                log.write(model.name + "\n")
        if _count[0] == _KILL:
            os.kill(os.getpid(), signal.SIGKILL)

    def create_client(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        client = _create_client(self, *args, **kwargs)
        client.meta.events.register("after-call.*.*", _after)
        return client

    botocore.session.Session.create_client = create_client
