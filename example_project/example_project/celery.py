"""The example project's Celery app: signing in tasks, one signer per worker process.

Start a worker next to the project (a Redis broker here; any broker works)::

    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 celery -A example_project.celery worker

Celery's default pool (prefork) imports this module in its main process and then
forks the processes that run tasks. A signer holds boto3 clients (their connection
pools' sockets, a session and its credential-refresh lock) and confio_kms's request
threads: none of that may cross a fork, since two processes writing one TLS socket
corrupt both streams and a thread or held lock does not exist in the child.
So nothing here builds a signer at import; each worker process builds its own on its
first task (``confio_kms.factory.kms_signer()`` keeps one per process), and
``worker_process_init`` drops anything the main process built before the fork.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def signer_per_process(**kwargs: Any) -> None:
    """In each new worker process: forget the signers built before the fork (their
    clients belong to the main process); the first task builds this process's own."""
    from confio_kms import factory

    factory.reset_clients()
