import time

from django.db import migrations, models


def backfill_prices(apps, schema_editor):
    # The sleep widens the window in which two unserialised migrate runs collide on the
    # ALTER TABLE (the second fails with "column already exists"), which is the race
    # entry's advisory lock prevents.
    time.sleep(1)
    apps.get_model("shop", "Item").objects.update(price=100)


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [
        migrations.AddField(model_name="item", name="price", field=models.IntegerField(default=0)),
        migrations.RunPython(backfill_prices, migrations.RunPython.noop),
    ]
