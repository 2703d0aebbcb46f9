"""The batch side: scheduled batch inference and segment jobs on Celery, pushed to marketing destinations.

A run is a chain of small, late-acknowledged tasks that take ids only (tasks.py): write the batch input
(steps.py; "users active in the last N days" come from the identity store's activity index,
active_users.py) → create the Personalize job under the run's deterministic name (personalize.py) → poll it
with countdowns → export the output in slices (exports.py, slices.py), each slice streaming lines,
decorating them with item metadata (outputs.py, catalog.py), skipping what the last sync already
delivered and pushing the rest through the job's destinations (exporter.py) with a Redis delivery
ledger (ledger.py) so a redelivered task or a rerun sends nothing twice. runs.py keeps each run's
report; schedules.py turns cron into beat entries; driver.py runs the same steps in one process;
config.py holds the workers' config sections. Redis key names live in keys.py.
"""
