"""Errors of ``citytel dashboards``: one base class, one subclass per way a push fails."""

from __future__ import annotations

from core.errors import CitytelError


class DashboardError(CitytelError):
    """Building or pushing dashboards failed.

    ``step`` says what was being done (``"find folder"``, ``"upsert dashboard"``),
    ``url`` which Grafana, ``uid`` which dashboard or folder, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        step: str = "",
        url: str = "",
        uid: str = "",
        status: int | None = None,
    ) -> None:
        context = ", ".join(
            f"{name}={value}"
            for name, value in (("step", step), ("url", url), ("uid", uid), ("status", status))
            if value not in ("", None)
        )
        super().__init__(f"{message} ({context})" if context else message)
        self.step = step
        self.url = url
        self.uid = uid
        self.status = status


class GrafanaUnreachableError(DashboardError):
    """No answer from Grafana: connection refused, DNS failure, TLS error or timeout."""


class GrafanaRejectedError(DashboardError):
    """Grafana answered with an error status (401 bad token, 403 no permission, 412 ...).

    ``status`` is the HTTP status; the message carries Grafana's own explanation.
    """
