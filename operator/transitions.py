"""Which Kubernetes Events a status change deserves (pure): phase changes and step outcomes."""
from __future__ import annotations

from typing import Any

Event = tuple[str, str, str]  # (type Normal|Warning, reason, message)


def transitions(old: dict[str, Any], new: dict[str, Any]) -> list[Event]:
    out: list[Event] = []
    old_steps = {s["name"]: s for s in old.get("steps", [])}
    for step in new.get("steps", []):
        before = old_steps.get(step["name"], {}).get("state")
        state = step.get("state")
        if state == before:
            continue
        label = f"{step['name']} ({step.get('pattern', '')})"
        if state == "Running" and before in (None, "Pending"):
            out.append(("Normal", "StepStarted", f"{label} started"))
        elif state == "Succeeded":
            took = f" in {step['durationSeconds']:.1f}s" if step.get("durationSeconds") else ""
            out.append(("Normal", "StepSucceeded", f"{label} succeeded: {step.get('rows', 0):,} rows{took}"))
        elif state == "Retrying":
            out.append(("Warning", "StepRetrying",
                        f"{label} attempt {step.get('attempts', 0)} failed, retrying: {step.get('message', '')}"))
        elif state == "Failed":
            out.append(("Warning", "StepFailed", f"{label} failed: {step.get('message', '')}"))
    if new.get("phase") != old.get("phase"):
        phase = new.get("phase")
        if phase == "Succeeded":
            arts = ", ".join(a["location"] for a in new.get("artifacts", []) if a.get("step") and
                             not a["location"].startswith("file:///var/lib/goreports"))
            out.append(("Normal", "Succeeded", f"report succeeded: {new.get('rows', 0):,} rows; {arts}"))
        elif phase == "Failed":
            reason = next((c.get("reason", "Failed") for c in new.get("conditions", [])
                           if c["type"] == "Ready"), "Failed")
            out.append(("Warning", reason, new.get("message", "report failed")))
        elif phase == "Running":
            out.append(("Normal", "Running", "workers picked up the report"))
    return out
