"""Alert rules for Grafana's unified alerting, and the contact point they notify.

Each rule is one SQL query on the citytel data source (no Grafana macros: the rules run
on their own clock) and a threshold. The same rules go into the provisioning file
``provisioning/alerting/citytel.yaml`` (the compose stack) and into the HTTP API body of
``citytel dashboards push``; one rule group ``citytel`` in the dashboards' folder,
evaluated every minute. Rules notify the contact point ``citytel-operations`` directly
(``notification_settings``), so pushing never touches the org's notification policies.
The contact point is a stub: a webhook to ``$GRAFANA_ALERT_WEBHOOK_URL`` (compose) or
``CITYTEL_GRAFANA_ALERT_WEBHOOK_URL`` (push), to be replaced by the operator's own.
"""

from __future__ import annotations

from dashboards.model import AlertRule, Json
from dashboards.render import PLUGIN_ID, sql_target
from dashboards.sql import district_label
from schemas.rollups import merge_sql
from schemas.topics import Kind

RULE_GROUP = "citytel"
RULE_GROUP_INTERVAL_S = 60
CONTACT_POINT = "citytel-operations"
# Where the stub sends notifications until the operator says otherwise: nothing listens.
WEBHOOK_PLACEHOLDER = "http://127.0.0.1:9/citytel-alerts-not-configured"
EXPRESSION_UID = "__expr__"
ORG_ID = 1

STALE_DEVICES_PCT = 20.0
DEAD_LETTERS_PER_MIN = 10.0
DEAD_LETTER_SPIKE_FACTOR = 5
PM25_LIMIT_UGM3 = 75.0
BALANCE_FAILURE_SHARE = 0.2

RULES: tuple[AlertRule, ...] = (
    AlertRule(
        uid="citytel-stale-devices",
        title="Stale devices",
        sql="""\
SELECT city, kind, 100.0 * count(*) FILTER (WHERE NOT fresh) / count(*) AS stale_pct
FROM device_freshness
GROUP BY city, kind""",
        threshold=STALE_DEVICES_PCT,
        pending="10m",
        summary="{{ $labels.kind }} devices of {{ $labels.city }}: {{ $values.A.Value }} % stale",
        description=f"More than {STALE_DEVICES_PCT:g} % of a city's devices of one kind have "
        "been silent for three reporting intervals or more (view device_freshness) for 10 "
        "minutes.",
    ),
    AlertRule(
        uid="citytel-critical-signal-fault",
        title="Critical signal fault",
        sql="""\
SELECT d.city, e.device_id, e.code, count(*)::double precision AS faults
FROM device_events e
JOIN devices d USING (device_id)
WHERE d.kind = 'signal' AND e.type = 'fault' AND e.severity = 'critical'
  AND e.ts > now() - INTERVAL '1 day' AND e.received_at > now() - INTERVAL '5 minutes'
GROUP BY 1, 2, 3""",
        threshold=0,
        pending="0s",
        severity="critical",
        summary="{{ $labels.code }} at {{ $labels.device_id }} ({{ $labels.city }})",
        description="A signal controller reported a critical fault (e.g. green_conflict) "
        "received in the last 5 minutes.",
    ),
    AlertRule(
        uid="citytel-dead-letter-spike",
        title="Dead-letter spike",
        sql=f"""\
WITH counts AS (
    SELECT reason,
           count(*) FILTER (WHERE received_at > now() - INTERVAL '5 minutes') / 5.0 AS recent,
           count(*) FILTER (WHERE received_at <= now() - INTERVAL '5 minutes') / 60.0 AS before
    FROM dead_letters
    WHERE received_at > now() - INTERVAL '65 minutes'
    GROUP BY reason
)
SELECT reason, recent AS per_minute
FROM counts
WHERE recent > {DEAD_LETTER_SPIKE_FACTOR} * before""",
        threshold=DEAD_LETTERS_PER_MIN,
        pending="0s",
        summary="{{ $labels.reason }} dead letters: {{ $values.A.Value }} a minute",
        description=f"Over the last 5 minutes, more than {DEAD_LETTERS_PER_MIN:g} dead letters a "
        f"minute of one reason, and {DEAD_LETTER_SPIKE_FACTOR} times the rate of the hour "
        "before: see `citytel deadletters list`.",
    ),
    AlertRule(
        uid="citytel-signal-timing-coverage",
        title="Signal-timing coverage below target",
        sql="""\
SELECT city, coverage_pct - target_pct AS gap_pct
FROM signal_timing_coverage
WHERE target_pct IS NOT NULL""",
        threshold=0,
        above=False,
        pending="1h",
        summary="{{ $labels.city }}: signal-timing coverage {{ $values.A.Value }} points "
        "from its target",
        description="The share of a city's intersections under intelligent timing (view "
        "signal_timing_coverage) has been below the target that applies to the city for an hour.",
    ),
    AlertRule(
        uid="citytel-pm25-exceedance",
        title="PM2.5 above the limit",
        sql=f"""\
SELECT r.city, {district_label("r.district")} AS district,
       {merge_sql(Kind.POLE, "pm25_avg_ugm3", "r")} AS pm25_ugm3
FROM pole_area_15m r
WHERE r.bucket >= now() - INTERVAL '1 hour' AND r.pm25_samples > 0
GROUP BY 1, 2""",
        threshold=PM25_LIMIT_UGM3,
        pending="15m",
        summary="{{ $labels.city }} / {{ $labels.district }}: PM2.5 {{ $values.A.Value }} µg/m³",
        description="The district's mean PM2.5 over the last hour (15-minute area rollups) is "
        f"above {PM25_LIMIT_UGM3:g} µg/m³, the GB 3095-2012 grade II 24-hour limit.",
    ),
    AlertRule(
        uid="citytel-energy-balance-failures",
        title="Energy node balance failures",
        sql="""\
SELECT d.city, r.device_id,
       sum(r.balance_failed)::double precision / sum(r.balance_checked) AS failing_share
FROM energy_rollup_15m r
JOIN devices d USING (device_id)
WHERE r.bucket >= now() - INTERVAL '30 minutes'
GROUP BY 1, 2
HAVING sum(r.balance_checked) > 0""",
        threshold=BALANCE_FAILURE_SHARE,
        pending="15m",
        summary="{{ $labels.device_id }} ({{ $labels.city }}): {{ $values.A.Value }} of "
        "samples fail the balance check",
        description=f"More than {BALANCE_FAILURE_SHARE:.0%} of an energy node's samples in the "
        "last 30 minutes fail the contract's balance check (pv + wind + grid + storage = "
        "load): a meter or the node reports wrong values.",
    ),
)


def _data(ref_id: str, datasource_uid: str, model: Json, *, seconds: int = 0) -> Json:
    return {
        "refId": ref_id,
        "relativeTimeRange": {"from": seconds, "to": 0},
        "datasourceUid": datasource_uid,
        "model": {"refId": ref_id, **model},
    }


def _queries(rule: AlertRule, datasource_uid: str) -> list[Json]:
    """A: the SQL (its time range unused: the rules use no macros); C: the threshold on A."""
    sql = sql_target(rule.sql, "table", {"type": PLUGIN_ID, "uid": datasource_uid})
    threshold = {
        "datasource": {"type": EXPRESSION_UID, "uid": EXPRESSION_UID},
        "type": "threshold",
        "expression": "A",
        "conditions": [
            {"evaluator": {"type": "gt" if rule.above else "lt", "params": [rule.threshold]}}
        ],
    }
    return [
        _data("A", datasource_uid, sql, seconds=600),
        _data("C", EXPRESSION_UID, threshold),
    ]


def rule_model(rule: AlertRule, *, datasource_uid: str) -> Json:
    """A rule as both the provisioning file and the HTTP API spell it."""
    return {
        "uid": rule.uid,
        "title": rule.title,
        "condition": "C",
        "data": _queries(rule, datasource_uid),
        "noDataState": "OK",
        "execErrState": "Error",
        "for": rule.pending,
        "annotations": {"summary": rule.summary, "description": rule.description},
        "labels": {"severity": rule.severity, "team": "citytel"},
        "isPaused": False,
        "notification_settings": {"receiver": CONTACT_POINT},
    }


def contact_point(url: str) -> Json:
    return {
        "uid": CONTACT_POINT,
        "name": CONTACT_POINT,
        "type": "webhook",
        "settings": {"url": url, "httpMethod": "POST"},
        "disableResolveMessage": False,
    }


def provisioning_file(*, folder: str, datasource_uid: str) -> Json:
    """The alerting provisioning file: the contact point stub and the rule group."""
    receiver = contact_point("${GRAFANA_ALERT_WEBHOOK_URL}")
    name = receiver.pop("name")
    return {
        "apiVersion": 1,
        "contactPoints": [{"orgId": ORG_ID, "name": name, "receivers": [receiver]}],
        "groups": [
            {
                "orgId": ORG_ID,
                "name": RULE_GROUP,
                "folder": folder,
                "interval": f"{RULE_GROUP_INTERVAL_S}s",
                "rules": [rule_model(r, datasource_uid=datasource_uid) for r in RULES],
            }
        ],
    }


def rule_group_body(*, folder_uid: str, datasource_uid: str) -> Json:
    """``PUT /api/v1/provisioning/folder/{folder}/rule-groups/citytel``: rules by uid."""
    rules = [
        rule_model(r, datasource_uid=datasource_uid)
        | {"folderUID": folder_uid, "ruleGroup": RULE_GROUP, "orgID": ORG_ID}
        for r in RULES
    ]
    return {
        "title": RULE_GROUP,
        "folderUid": folder_uid,
        "interval": RULE_GROUP_INTERVAL_S,
        "rules": rules,
    }
