"""The kopf operator: accepts ReportRequests, folds StageEvents into their status, enforces
deadlines, cleans up on deletion, runs ReportSchedules and scales worker pools.

It is the only writer of `status` and the only part that talks to the Kubernetes API; workers
never do. Import name `goreports.operator` (the folder is never importable as `operator`).
"""
