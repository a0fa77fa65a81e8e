from django.db import migrations


class Migration(migrations.Migration):
    """The audit record's key kind is called ``kind``, as everywhere else."""

    dependencies = [("confio_kms", "0001_initial")]

    operations = [
        migrations.RenameField(model_name="signingrecord", old_name="mode", new_name="kind"),
    ]
