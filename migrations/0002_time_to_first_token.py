from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Message',
            name='time_to_first_token_ms',
            field=fields.IntField(null=True),
        ),
    ]
