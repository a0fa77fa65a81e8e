"""The Django signals confio_kms sends.

``sponsor_balance_crossed``: a read of the sponsor account's balance found it on the
other side of the floor (``CONFIO_KMS_SPONSOR_MIN_BALANCE``) from the previous read in
this process: ``below=True`` when it fell under the floor, ``below=False`` when it is
back at or over it. Sent once per crossing and process (the first read counts as
crossing down when it is already below: a process starts assuming a healthy account);
a process that never reads the balance sends nothing. Sent synchronously, in the thread
that read the balance, after the read and before the sponsor service decides.

Sender: ``confio_kms.sponsor_health.BalanceGuard`` (the class). Keyword arguments:

- ``guard``: the ``BalanceGuard`` instance that read the balance;
- ``address``: the sponsor account;
- ``balance``: microalgos it holds (int);
- ``min_balance``: the minimum balance Algorand makes it keep (int);
- ``floor``: the configured floor (int);
- ``below``: True crossing down, False crossing back up.

Example::

    from django.dispatch import receiver
    from confio_kms.signals import sponsor_balance_crossed

    @receiver(sponsor_balance_crossed)
    def page_the_treasurer(sender, address, balance, floor, below, **kwargs):
        if below:
            alert(f"fund {address}: {balance} < {floor} microalgos")
"""

from __future__ import annotations

from django.dispatch import Signal

sponsor_balance_crossed = Signal()
