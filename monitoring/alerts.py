"""Alerts: one clear log line and a JSON POST to a webhook when a run finds a problem.

    Decision.signals (drift, prediction drift, KPI drop) + RunSummary
      --alert_payload--> {"text", "run_id", "model_version", "window", "signals",
                          "retrain", "drift_share", "kpis", "report"}
      --post_alert(url, timeout)--> True when the receiver answered 2xx
    an experiment report's KPI declines --experiment_payload--> {"text", "experiment",
                          "declines", "srm_flagged", "report"} --post_alert--> the same URL

The `text` field makes the body readable by chat webhooks (Slack, Mattermost) as it is.
Posting never raises into the monitoring run: a dead or slow receiver costs at most the
timeout and a warning in the log; the run's exit code does not depend on it.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.error
import urllib.request
from typing import Any

from monitoring.summary import RunSummary

logger = logging.getLogger(__name__)


def alert_payload(summary: RunSummary, report: str) -> dict[str, Any]:
    """The JSON body of an alert about `summary` (whose decision is set)."""
    decision = summary.decision
    signals = decision.signals if decision else []
    action = "retraining requested" if decision and decision.retrain else "no retraining"
    return {
        "text": (
            f"Tailwise monitoring: model {summary.model_version}, window {summary.window} "
            f"ending {summary.window_end:%Y-%m-%d %H:%M} UTC: "
            + "; ".join(signals)
            + f" ({action})"
        ),
        "run_id": summary.run_id,
        "model_version": summary.model_version,
        "window_start": summary.window_start.isoformat(),
        "window_end": summary.window_end.isoformat(),
        "signals": signals,
        "retrain": bool(decision and decision.retrain),
        "reasons": decision.reasons if decision else [],
        "drift_share": summary.feature_drift.share,
        "drifted_features": summary.feature_drift.drifted,
        "kpis": summary.quality.kpis,
        "report": report,
    }


def experiment_payload(result: dict[str, Any], report: str) -> dict[str, Any]:
    """The JSON body of an alert about an experiment report's KPI declines."""
    found = result.get("declines") or []
    return {
        "text": f"Tailwise experiment {result['experiment']}: KPI decline on "
        + "; ".join(d["message"] for d in found),
        "experiment": result["experiment"],
        "control": result["control"],
        "declines": found,
        "srm_flagged": bool(result["srm"]["flagged"]),
        "report": report,
    }


def post_alert(url: str | None, payload: dict[str, Any], timeout: float = 5.0) -> bool:
    """Log the alert, then POST it to `url` (if any); False when it did not arrive."""
    logger.warning("ALERT %s", payload.get("text", payload))
    if not url:
        return False
    body = json.dumps(payload, default=str).encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "tailwise-monitoring"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        logger.warning(
            "alert webhook %s answered HTTP %s; alert not delivered", _safe(url), exc.code
        )
        return False
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        logger.warning("alert webhook %s unreachable (%s); alert not delivered", _safe(url), reason)
        return False
    except Exception as exc:  # an alert must never fail the run that raised it
        logger.warning("alert webhook %s failed (%r); alert not delivered", _safe(url), exc)
        return False
    if not 200 <= status < 300:
        logger.warning("alert webhook %s answered HTTP %s; alert not delivered", _safe(url), status)
        return False
    logger.info("alert delivered to %s", _safe(url))
    return True


def _safe(url: str) -> str:
    """The URL without its path and query, which often carry a token."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/..." if rest else url
