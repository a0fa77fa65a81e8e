from django.apps import AppConfig


class ConfioKMSConfig(AppConfig):
    name = "confio_kms"
    verbose_name = "Confio KMS signing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Before anything logs at DEBUG, keep secrets out of botocore's wire logs.
        from confio_kms import checks  # noqa: F401  (registers the system checks)
        from confio_kms.common.redaction import install_redaction

        install_redaction()
