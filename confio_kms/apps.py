from django.apps import AppConfig


class ConfioKMSConfig(AppConfig):
    name = "confio_kms"
    verbose_name = "Confio KMS signing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Before anything logs at DEBUG, keep secrets out of botocore's wire logs.
        from django.core.signals import setting_changed

        from confio_kms import checks  # noqa: F401  (registers the system checks)
        from confio_kms.common.redaction import install_redaction
        from confio_kms.reporting import hide_legacy_mnemonic, rehide_legacy_mnemonic

        install_redaction()
        # Django's error pages and emails list the settings whatever the filter: the
        # legacy mnemonic must be hidden before the first request can fail.
        hide_legacy_mnemonic()
        setting_changed.connect(rehide_legacy_mnemonic, dispatch_uid="confio_kms.mnemonic")
