# The learning loop: outcomes of finished sessions and lessons (sessions/outcomes.py, lessons.py).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agent_sessions', '0007_orchestrator_intake_overlaps'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Lesson',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('worker_rule', 'Worker rule'), ('agent_settings', 'Agent settings')], max_length=24)),
                ('pattern', models.CharField(max_length=200)),
                ('text', models.TextField(help_text='the proposal, for people')),
                ('prompt_text', models.TextField(blank=True, help_text='what later workers are told, once accepted')),
                ('evidence', models.JSONField(blank=True, default=dict)),
                ('status', models.CharField(choices=[('proposed', 'Proposed'), ('accepted', 'Accepted'), ('rejected', 'Rejected')], db_index=True, default='proposed', max_length=16)),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('baseline', models.JSONField(blank=True, default=dict, help_text='the metric before acceptance')),
                ('later', models.JSONField(blank=True, default=dict, help_text='the same metric since acceptance')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='lessons', to='agent_sessions.project')),
            ],
            options={
                'ordering': ['status', '-created_at', '-pk'],
                'constraints': [models.UniqueConstraint(fields=('project', 'pattern'), name='lesson_unique_pattern_per_project')],
            },
        ),
        migrations.CreateModel(
            name='Outcome',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('result', models.CharField(choices=[('merged', 'Merged'), ('abandoned', 'Abandoned')], db_index=True, max_length=16)),
                ('end_status', models.CharField(blank=True, help_text="the session's status when it ended", max_length=24)),
                ('agent', models.CharField(blank=True, max_length=64)),
                ('model', models.CharField(blank=True, max_length=128)),
                ('started_at', models.DateTimeField(db_index=True)),
                ('ended_at', models.DateTimeField(blank=True, db_index=True, null=True)),
                ('first_pr_seconds', models.FloatField(blank=True, help_text='session start → first PR', null=True)),
                ('merge_seconds', models.FloatField(blank=True, help_text='session start → merged', null=True)),
                ('ci_ran', models.BooleanField(default=False, help_text='any CI result was seen')),
                ('ci_failure_cycles', models.PositiveIntegerField(default=0, help_text='distinct head commits with failing CI')),
                ('failed_checks', models.JSONField(blank=True, default=dict, help_text='{check name: failing cycles}')),
                ('first_failed_checks', models.JSONField(blank=True, default=list, help_text='checks of the first failing cycle')),
                ('review_rounds', models.PositiveIntegerField(default=0, help_text='times changes were requested')),
                ('human_messages', models.PositiveIntegerField(default=0)),
                ('reaction_messages', models.PositiveIntegerField(default=0)),
                ('orchestrator_messages', models.PositiveIntegerField(default=0)),
                ('escalations', models.PositiveIntegerField(default=0)),
                ('needed_human', models.BooleanField(default=False)),
                ('human_reasons', models.JSONField(blank=True, default=list, help_text='why people were needed')),
                ('tokens_in', models.BigIntegerField(default=0)),
                ('tokens_out', models.BigIntegerField(default=0)),
                ('cost_usd', models.DecimalField(decimal_places=4, default=0, max_digits=12)),
                ('data', models.JSONField(blank=True, default=dict, help_text="the rest of outcome_compute's result")),
                ('computed_at', models.DateTimeField()),
                ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='outcomes', to='agent_sessions.project')),
                ('session', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='outcome', to='agent_sessions.session')),
            ],
            options={
                'ordering': ['-ended_at', '-pk'],
                'indexes': [models.Index(fields=['project', 'ended_at'], name='agent_sessi_project_ee0f12_idx')],
            },
        ),
    ]
