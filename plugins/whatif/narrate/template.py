"""The template narrator: deterministic prose from a scenario's facts alone, offline; the
fallback of every LLM narrator. Its packs pass the same grounding check as an LLM's (tested).
The wording of each failure mode (MODE_*) is here; the communications policy too, which the
prompts quote (whatif.narrate.context)."""

from __future__ import annotations

from typing import Any

from whatif.formatting import percent
from whatif.schemas import Narrative

STATUS_UPDATES = {"first_within_minutes": 15, "then_every_minutes": 30}  # communications policy
DEFAULT_DETECT_MINUTES = 5.0  # when the history has no detected_at / acknowledged_at

MODE_PHRASES = {
    "capacity": "runs out of capacity",
    "database": "suffers a database failure",
    "deployment": "ships a bad deployment",
    "config": "receives a bad configuration change",
    "network": "loses network connectivity",
    "dependency": "is broken by a failing dependency",
    "hardware": "loses its hardware",
    "security": "suffers a security incident",
    "data": "serves corrupted data",
    "other": "fails in an unexpected way",
}

MODE_MITIGATIONS = {
    "capacity": "Check saturation dashboards; shed or rate-limit non-critical traffic and "
    "scale out.",
    "database": "Check replication lag, connection pools and slow queries; fail over if the "
    "primary is unhealthy.",
    "deployment": "Freeze deploys and roll back the latest release of the service.",
    "config": "Revert the most recent configuration or feature-flag change.",
    "network": "Check the network path and DNS; drain the affected zone if it is isolated.",
    "dependency": "Confirm the failing dependency's status; open circuit breakers and serve "
    "degraded responses.",
    "hardware": "Replace or drain the failed hosts; confirm redundancy is restored.",
    "security": "Contain first: revoke exposed credentials and isolate affected hosts; "
    "involve the security on-call.",
    "data": "Stop writes that spread the bad data; identify the last good snapshot.",
    "other": "Follow the service runbook and gather evidence before changing anything.",
}

MODE_SIGNALS = {
    "capacity": "CPU, memory or connection-pool saturation alerts, then rising latency",
    "database": "replication-lag, connection-error or slow-query alerts",
    "deployment": "error rate rising right after a release",
    "config": "errors starting right after a configuration or feature-flag change",
    "network": "timeouts and connection resets between zones; DNS resolution failures",
    "dependency": "timeouts and errors in calls to a dependency",
    "hardware": "host or disk health checks failing; instances leaving the load balancer",
    "security": "security alerts, unusual access patterns or credential misuse",
    "data": "data-quality checks failing; users reporting wrong results",
    "other": "error-rate and latency alerts without an obvious cause",
}

MODE_SHORT_TERM = {
    "capacity": "Load-test the service at the expected peak and set autoscaling limits above it.",
    "database": "Rehearse the database failover and check that its alerts page someone.",
    "deployment": "Make rollback a single command and add a canary stage to the release.",
    "config": "Put configuration changes through review and a staged rollout.",
    "network": "Rehearse draining a zone and check the dependency timeouts.",
    "dependency": "Add timeouts, circuit breakers and fallbacks to the calls of the dependency.",
    "hardware": "Check that the capacity left after losing a host still covers the peak.",
    "security": "Rotate the credentials of the service and review who can use them.",
    "data": "Add data-quality checks and a tested restore from snapshot.",
    "other": "Write down what is known of this failure in the runbook.",
}

MODE_LONG_TERM = {
    "capacity": "Design for graceful degradation under overload (admission control, queues).",
    "database": "Remove the single primary from the critical path (replicas, caching, "
    "partitioning).",
    "deployment": "Automate progressive delivery with automatic rollback on error budgets.",
    "config": "Validate configuration automatically before it reaches production.",
    "network": "Spread the service over zones so that losing one is a non-event.",
    "dependency": "Make the dependency soft: serve degraded responses when it is down.",
    "hardware": "Make hosts cattle: replace failed ones automatically.",
    "security": "Adopt short-lived credentials and least privilege for the service.",
    "data": "Make writes verifiable and reversible (checksums, event sourcing, backups).",
    "other": "Review this failure mode in the next architecture review.",
}


def _minutes(value: float) -> str:
    if value >= 120:
        return f"{value / 60:.1f} hours"
    return _count(round(value), "minute")


def _count(n: float, noun: str) -> str:
    """'1 service', '3 services': the number as the sentence beside it says it."""
    return f"{n:.0f} {noun}" + ("" if round(n) == 1 else "s")


NO_OWNER = "no owner in the topology"


def _severity_clause(severity: str) -> str:
    """How bad it most likely is, or that the history cannot say."""
    if severity == "unknown":
        return "its severity is unknown: the history records none"
    return f"it is most likely a {severity}"


def _list(names: list[str]) -> str:
    if not names:
        return "none"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


class TemplateNarrator:
    """Deterministic prose from the facts alone; also the fallback for every LLM narrator.
    Its output passes the same grounding check as an LLM's (tested)."""

    name = "template"

    def narrate(self, facts: dict[str, Any], inputs: dict[str, Any]) -> Narrative:
        service = facts["trigger"]["service"]
        mode = facts["trigger"]["failure_mode"]
        second = facts.get("co_trigger")
        roots = [service] + ([second["service"]] if second else [])
        event = inputs.get("event")
        during = f" during {event['name']}" if event else ""
        others = [s for s in facts["affected_services"] if s not in roots]
        what = self._what(facts["trigger"], inputs)
        if second:
            what = f"both {what} and, independently, {self._what(second, inputs)}"
        title = f"{service} {MODE_PHRASES[mode]}"
        mitigations = self._mitigations(service, mode, others, inputs)
        checklist = self._checklist(service, others, inputs)
        if second:
            title += f" and {second['service']} {MODE_PHRASES[second['failure_mode']]}"
            extra = self._mitigations(second["service"], second["failure_mode"], [], inputs)
            for bucket, steps in extra.items():
                mitigations[bucket] += [m for m in steps if m not in mitigations[bucket]]
            more = self._checklist(second["service"], [], inputs)
            checklist[2:2] = [item for item in more[1:-1] if item not in checklist]
        return Narrative.model_validate(
            {
                "title": f"What if {title}{during}?",
                "narrative": self._narrative(facts, inputs, what, others, during),
                "injects": self._injects(facts, inputs, roots, others),
                "predicted_impact": self._impact(facts),
                "detection_signals": self._signals(service, mode, facts),
                "mitigations": mitigations,
                "checklist": checklist,
                "facilitator_questions": self._questions(service, others, event),
            }
        )

    @staticmethod
    def _narrative(
        facts: dict[str, Any], inputs: dict[str, Any], what: str, others: list[str], during: str
    ) -> str:
        spread = facts["impact"]["affected_probability"]
        duration = facts["expected_duration_minutes"]
        they = "they do" if facts.get("co_trigger") else "it does"
        return (
            f"Within the next {inputs['horizon_days']:g} days{during} there is a "
            f"{percent(facts['probability'])} chance that {what}. "
            + (
                f"When {they}, the failure spreads through the dependency graph: "
                f"{_list([f'{s} ({percent(spread[s])})' for s in others[:5]])} are hit in "
                "that share of simulated outcomes. "
                if others
                else "The failure is likely to stay contained to this service. "
            )
            + f"The outage lasts about {_minutes(duration['p50'])} "
            f"(1 in 10 last longer than {_minutes(duration['p90'])}); "
            f"{_severity_clause(facts['severity'])}."
        )

    @staticmethod
    def _impact(facts: dict[str, Any]) -> str:
        blast = facts["impact"]["blast_radius"]
        severity = facts["severity"]
        teams = facts["impact"]["teams_paged"]
        return (
            f"{'severity unknown' if severity == 'unknown' else severity}; "
            f"{_count(blast['p50'], 'service')} affected (p90 {blast['p90']:.0f}); "
            f"user-facing services affected: {_list(facts['user_facing_affected'])}; "
            f"teams paged: {_list(teams) if teams else f'none named ({NO_OWNER})'}."
        )

    @staticmethod
    def _injects(
        facts: dict[str, Any], inputs: dict[str, Any], roots: list[str], others: list[str]
    ) -> list[dict[str, Any]]:
        service = roots[0]
        times = inputs.get("response_minutes", {}).get(service, {})
        detect = max(1, round(times.get("detect") or DEFAULT_DETECT_MINUTES))
        acknowledge = detect + max(1, round(times.get("acknowledge") or DEFAULT_DETECT_MINUTES))
        typical = facts["expected_duration_minutes"]["p50"]
        restore = max(1, round(typical))
        owner = inputs["owners"].get(service)
        on_call = f"{owner} on-call" if owner else f"the on-call of {service} ({NO_OWNER})"
        if restore <= detect:  # the typical outage ends before monitoring notices it
            return [
                {
                    "minute": 0,
                    "event": f"{_list(roots)} {MODE_PHRASES[facts['trigger']['failure_mode']]}.",
                    "observed": "Nothing yet: no alert has fired.",
                },
                {
                    "minute": restore,
                    "event": f"{service} recovers by itself after about {_minutes(typical)} "
                    f"(the typical outage), before monitoring detects it (about "
                    f"{_count(detect, 'minute')}).",
                    "observed": "A blip in the error-rate graphs; nobody is paged.",
                },
            ]
        injects = [
            {
                "minute": 0,
                "event": f"{_list(roots)} {MODE_PHRASES[facts['trigger']['failure_mode']]}.",
                "observed": "Nothing yet: no alert has fired.",
            },
            {
                "minute": detect,
                "event": f"Monitoring detects the failure of {service}.",
                "observed": f"{on_call} is paged: "
                f"{MODE_SIGNALS[facts['trigger']['failure_mode']]}.",
            },
        ]
        if others and acknowledge < restore:
            users = facts["user_facing_affected"]
            injects.append(
                {
                    "minute": acknowledge,
                    "event": f"The failure spreads to {_list(others[:3])}.",
                    "observed": (
                        f"Users of {_list(users[:3])} see errors; support tickets arrive."
                        if users
                        else "Internal error rates rise in the dependents' dashboards."
                    ),
                }
            )
        injects.append(
            {
                "minute": restore,
                "event": f"{service} is restored (the typical outage length).",
                "observed": "Error rates return to normal; dependents recover.",
            }
        )
        return injects

    @staticmethod
    def _signals(service: str, mode: str, facts: dict[str, Any]) -> list[str]:
        signals = [f"{service}: {MODE_SIGNALS[mode]}"]
        if facts["user_facing_affected"]:
            signals.append(
                f"Synthetic checks and error rates of {_list(facts['user_facing_affected'][:3])}"
            )
        signals.append("Support tickets and status-page reports from users")
        return signals

    @staticmethod
    def _what(trigger: dict[str, str], inputs: dict[str, Any]) -> str:
        service = trigger["service"]
        owner = inputs["owners"].get(service)
        whose = f"owned by {owner}" if owner else NO_OWNER
        return f"{service} ({whose}) {MODE_PHRASES[trigger['failure_mode']]}"

    @staticmethod
    def _mitigations(
        service: str, mode: str, others: list[str], inputs: dict[str, Any]
    ) -> dict[str, list[str]]:
        immediate = [MODE_MITIGATIONS[mode]]
        runbook = inputs["runbooks"].get(service)
        immediate.append(f"Follow the {service} runbook: {runbook}." if runbook else "")
        long_term = [MODE_LONG_TERM[mode]]
        if others:
            immediate.append(
                f"Protect the dependents ({_list(others[:5])}) with timeouts, retries with "
                "backoff and graceful degradation so the failure stops spreading."
            )
            long_term.append(f"Make the dependents of {service} degrade gracefully when it fails.")
        short_term = [MODE_SHORT_TERM[mode]]
        if not runbook:
            short_term.append(f"{service} has no runbook in the topology: write one.")
        return {
            "immediate": [step for step in immediate if step],
            "short_term": short_term,
            "long_term": long_term,
        }

    @staticmethod
    def _checklist(service: str, others: list[str], inputs: dict[str, Any]) -> list[dict]:
        owners = inputs["owners"]
        root_team = owners.get(service) or f"{service} ({NO_OWNER})"
        items = [
            {
                "role": "Incident commander",
                "action": "Declare the incident, open the channel and assign roles.",
            },
            {
                "role": f"{root_team} on-call",
                "action": f"Confirm the {service} failure and start its runbook.",
            },
        ]
        for team in sorted({owners[s] for s in others if owners.get(s)} - {root_team}):
            items.append(
                {
                    "role": f"{team} on-call",
                    "action": "Check your services' error rates and degrade gracefully.",
                }
            )
        first, every = STATUS_UPDATES["first_within_minutes"], STATUS_UPDATES["then_every_minutes"]
        items.append(
            {
                "role": "Communications lead",
                "action": f"Post a status update within {first} minutes and every {every} after.",
            }
        )
        return items

    @staticmethod
    def _questions(service: str, others: list[str], event: dict[str, Any] | None) -> list[str]:
        questions = [
            f"How would we know that {service} is failing before users tell us?",
            "Who decides to roll back or fail over, and what do they need to know first?",
        ]
        if others:
            questions.append(
                f"Which of {_list(others[:3])} can degrade gracefully, and which fail hard?"
            )
        questions.append("What goes into the first status update, and who approves it?")
        if event:
            questions.append(f"What is different during {event['name']}: staffing, freezes?")
        return questions
