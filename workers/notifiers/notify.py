"""The `notify` notifier: tell people how a report ended, by webhook and/or e-mail.

It runs twice in a report's life at most: as the last step of the chain when everything before
it succeeded, and as the job the runtime publishes when a step failed (then `Job.failure` holds
"<step>: <message>"). `when` (success, failure; default both) decides whether it sends.

- Webhook: a signed JSON notification (goreports.workers.dispatchers._webhook_sign.
  notification_payload: outcome, report, error, artifacts, trace id, and a one-line `text` chat
  tools show), posted with the webhook dispatcher's client, so the SSRF guard, retries and the
  signature are the same. Its Idempotency-Key is stable per report, step and outcome.
- E-mail: delegated to the e-mail dispatcher module (`send_notification_email`), imported when
  needed so that this module does not depend on it; subject and body are rendered here (Mustache
  over the same values as the webhook's payload).

Artifacts listed are those the spec names for the notifier (by default every artifact of the
report) that are still in the staging store; on failure, usually some are missing, and they are
left out. Each channel that has sent keeps a marker (the webhook here, the e-mail in the e-mail
module), so a retried notifier does not send twice.
"""
from __future__ import annotations

import html
from typing import Any

import chevron

from goreports.core.errors import PermanentError
from goreports.proto import events_pb2, tasks_pb2
from goreports.workers._net import origin
from goreports.core.artifacts import safe_name
from goreports.workers.dispatchers._webhook_sign import idempotency_key, notification_payload
from goreports.workers.dispatchers.webhook import post_signed, webhook_client, webhook_secrets
from goreports.workers.registry import stage
from goreports.workers.stage import StageContext, StageResult

OUTCOMES = ("success", "failure")
DEFAULT_SUBJECT = "Report {{report.namespace}}/{{report.name}}: {{outcome}}"
DEFAULT_BODY = """Report {{report.namespace}}/{{report.name}} ended: {{outcome}}.
{{#error}}
Error: {{error}}
{{/error}}
{{#artifacts}}
- {{name}} ({{size}} bytes, sha256 {{sha256}}): {{location}}
{{/artifacts}}
Trace id: {{traceId}}
"""


async def stored_artifacts(ctx: StageContext, names: list[str]) -> list[events_pb2.Artifact]:
    """The named artifacts still in the staging store (missing ones are skipped)."""
    found = []
    for name in dict.fromkeys(names):  # unique, in order
        try:
            found.append(await ctx.artifacts.stat(ctx.report.uid, safe_name(name)))
        except PermanentError:
            continue
    return found


def render(template: str, payload: dict[str, Any]) -> str:
    """Mustache over the notification payload, as plain text: chevron escapes for HTML, and a
    mail body is not HTML, so the escapes are undone."""
    return html.unescape(chevron.render(template, payload))


@stage("notify", channel="notifiers", task=tasks_pb2.Notifier)
async def notify(task: tasks_pb2.Notifier, ctx: StageContext) -> StageResult:
    outcome = "failure" if ctx.job.failure else "success"
    when = set(task.when) or set(OUTCOMES)
    if unknown := when - set(OUTCOMES):
        raise PermanentError(f"step {ctx.step!r} (notify): when {sorted(unknown)} is unknown "
                             f"(success, failure)", reason="InvalidTask")
    if outcome not in when:
        return StageResult(message=f"no notification on {outcome} (when: {', '.join(task.when)})")
    has_webhook = task.HasField("webhook") and bool(task.webhook.url)
    has_email = task.HasField("email") and bool(task.email.to)
    if not has_webhook and not has_email:
        raise PermanentError(f"step {ctx.step!r} (notify) has neither a webhook nor an e-mail",
                             reason="InvalidTask")
    uid = ctx.report.uid
    key = idempotency_key(uid, ctx.step, outcome)
    names = list(task.webhook.artifacts) + list(task.email.artifacts)
    artifacts = await stored_artifacts(ctx, [a.name for a in names])
    payload = notification_payload(ctx.job, artifacts, key)
    sent = []

    if has_webhook:
        target = origin(task.webhook.url)
        what = f"step {ctx.step!r} (notify webhook to {target})"
        marker = ctx.bus.keys.marker(uid, f"notify-webhook-{outcome}", ctx.step)
        if await ctx.bus.get_marker(marker) is None:
            secret, auth = webhook_secrets(task.webhook, ctx, what)
            async with webhook_client(task.webhook, what) as client:
                await post_signed(client, task.webhook, payload=payload, key=key, secret=secret,
                                  auth=auth, what=what)
            await ctx.bus.set_marker(marker, ttl=ctx.settings.report_ttl)
        sent.append(f"webhook {target}")

    if has_email:
        try:
            from goreports.workers.dispatchers.email import send_notification_email
        except ImportError:
            raise PermanentError("e-mail notification needs the email dispatcher module "
                                 "(goreports.workers.dispatchers.email.send_notification_email)",
                                 reason="EmailUnavailable") from None
        subject = render(task.email.subject or DEFAULT_SUBJECT, payload).strip()
        body = render(task.email.body or DEFAULT_BODY, payload)
        # Sent once per report step and outcome: the e-mail module keeps its own marker.
        await send_notification_email(task.email, ctx, subject=subject, body=body)
        sent.append(f"e-mail to {len(task.email.to)} recipient(s)")

    return StageResult(message=f"notified {outcome}: {', '.join(sent)}")
