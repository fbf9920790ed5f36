"""Jinja2 templates of the intake pages, with London-time and clock filters, and page headers."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

__all__ = [
    "PAGE_CSP",
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "duration",
    "environment",
    "london",
    "page",
    "page_headers",
]

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"

#: Scripts, styles and images from our own origin only; no inline script or style at all;
#: forms post only to us; nothing frames the pages.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

_LONDON = ZoneInfo("Europe/London")


def london(value: datetime | None, fmt: str = "%a %d %b %Y, %H:%M %Z") -> str:
    """An instant as Europe/London wall time (GMT or BST shown); ``—`` for none."""
    if value is None:
        return "—"
    return value.astimezone(_LONDON).strftime(fmt)


def duration(seconds: int | None) -> str:
    """Time left as people say it: ``2 h 15 min left``, ``overdue by 3 h 5 min``."""
    if seconds is None:
        return "—"
    overdue = seconds <= 0
    remaining = abs(seconds)
    days, rest = divmod(remaining, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} d"] if days else []
    if hours or days:
        parts.append(f"{hours} h")
    if not days:
        parts.append(f"{minutes} min")
    text = " ".join(parts)
    return f"overdue by {text}" if overdue else f"{text} left"


def _words(code: str | None) -> str:
    return (code or "").replace("_", " ")


def environment() -> Environment:
    """The template environment (autoescaped HTML)."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["london"] = london
    env.filters["duration"] = duration
    env.filters["words"] = _words
    return env


_ENV = environment()


def page_headers() -> dict[str, str]:
    """Headers of every intake page (the API middleware adds the rest).

    ``same-origin`` rather than the API's ``no-referrer``: under ``no-referrer`` a browser
    sends ``Origin: null`` with a form post, and the API's cross-origin check (rightly)
    refuses that; URLs still never leave the site.
    """
    return {
        "content-security-policy": PAGE_CSP,
        "cache-control": "no-store",
        "referrer-policy": "same-origin",
    }


def page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` with ``context`` as an HTML answer with the page headers."""
    html = _ENV.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=page_headers())
