from django.db import migrations, models


class Migration(migrations.Migration):
    """Audit rows carry the fees of what was signed: the sponsor's spend per window."""

    dependencies = [("confio_kms", "0002_rename_mode_to_kind")]

    operations = [
        migrations.AddField(
            model_name="signingrecord",
            name="fee",
            field=models.PositiveBigIntegerField(
                default=0,
                help_text="Microalgos of fees the signed transactions carry (0 before 0003).",
            ),
        ),
    ]
