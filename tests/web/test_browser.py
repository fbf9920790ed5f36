"""In a real headless Chromium: sign in, watch an alert arrive from RabbitMQ, act on it."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.api.auth import AccountStore, Role
from broker.demokeys import ensure_demo_keys
from broker.intake.consumer import IntakeConsumer
from broker.policy import load_agreement
from broker.runtime import Runtime
from broker.service import Service
from schemas.events import CaseStatus, CseLevel, CseTrackerEntry, RemovalReason
from tests.broker.intake.conftest import seal_for_mash
from tests.broker.intake.factories import child, event
from tests.integration.helpers import publish_native
from tests.web.conftest import AGREEMENT, PASSWORD, web_settings

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SAMPLE = ROOT / "samples" / "police" / "episode-01-reported.json"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.rabbitmq,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


def store_tracker_statuses(service: Service) -> None:
    """Two children on the CSE tracker: one at level 3, one removed after intervention."""
    today = datetime.now(UTC)
    consumer = IntakeConsumer(service)
    spells = [
        (21, CseLevel.LEVEL_3, today - timedelta(days=70), None),
        (22, CseLevel.LEVEL_2, today - timedelta(days=150), today - timedelta(days=100)),
    ]
    for nhs, level, identified, removed in spells:
        entry = CseTrackerEntry(
            level=level,
            identified_on=identified.date(),
            removed_on=removed.date() if removed else None,
            removal_reason=RemovalReason.SUCCESSFUL_INTERVENTION if removed else None,
        )
        status = event(CaseStatus(as_of=today, cse_tracker=entry), subject=child(nhs=nhs), at=today)
        consumer.store(seal_for_mash(service, status, "case-status-to-mash"), None)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def running(tmp_path: Path, amqp_url: str) -> AsyncIterator[tuple[Service, str]]:
    """The whole service (ingest, relay, intake, API) on a free loopback port."""

    keys = tmp_path / "keys"
    ensure_demo_keys(keys, load_agreement(AGREEMENT), "wam-broker")
    base = f"http://127.0.0.1:{free_port()}"
    settings = web_settings(f"sqlite:///{tmp_path / 'browser.db'}", keys, amqp_url, base)
    settings.intake.refresh_seconds = 1
    service = Service.load(settings)
    AccountStore(service.sessions).add("mo.manager", PASSWORD, [Role.MANAGER])
    runtime = Runtime(service, ("ingest", "relay", "intake", "api"))
    await runtime.start()
    try:
        yield service, base
    finally:
        await runtime.stop()
        service.engine.dispose()


async def test_sign_in_see_an_alert_arrive_acknowledge_it_and_see_the_kpis(
    running: tuple[Service, str],
) -> None:
    playwright_api = pytest.importorskip("playwright.async_api")
    service, base = running
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = await browser.new_page(viewport={"width": 1366, "height": 768})
            # A CSP violation or a script error shows as a console error.
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            expect = playwright_api.expect

            await page.goto(f"{base}/intake")
            await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
            await page.get_by_label("User name").fill("mo.manager")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", name="Intake queue")).to_be_visible()
            rows = page.locator("tr[data-alert-id]")
            await expect(rows).to_have_count(0)

            # A police report goes in at the AMQP ingest; the queue updates by itself.
            await publish_native(service, [("police", SAMPLE.read_bytes(), "tvp-police")])
            await expect(rows).to_have_count(1, timeout=30_000)
            await expect(rows.first).to_contain_text("missing.reported")
            await expect(page.locator("#queue-announce")).to_have_text("1 new alert in the queue.")
            await page.screenshot(path=str(ARTIFACTS / "intake-queue.png"), full_page=True)

            await rows.first.get_by_role("link").first.click()
            await expect(page.locator("#alert-status")).to_have_text("new")
            await page.get_by_role("button", name="Acknowledge").click()
            await expect(page.locator("#alert-status")).to_have_text("acknowledged")
            clock_row = page.locator("tr", has_text="MASH decision (1 working day)")
            await expect(clock_row).to_contain_text("left")
            await expect(page.locator("table", has_text="Who did what")).to_contain_text(
                "new → acknowledged"
            )
            await page.screenshot(path=str(ARTIFACTS / "intake-alert.png"), full_page=True)

            # Paris tracker statuses, stored straight through the intake consumer.
            await asyncio.to_thread(store_tracker_statuses, service)
            await page.get_by_role("link", name="CSE tracker and KPIs").click()
            chart = page.locator("svg#chart-level-3")
            await expect(chart).to_be_visible()
            await expect(chart.locator("rect")).not_to_have_count(0)
            await expect(page.locator("#kpi-table")).to_contain_text("100.0%")
            await expect(page.locator("svg#chart-prevention")).to_be_visible()
            await page.screenshot(path=str(ARTIFACTS / "intake-kpis.png"), full_page=True)

            # Keyboard: the skip link is the first stop and lands on the main content.
            await page.keyboard.press("Tab")
            await expect(page.get_by_role("link", name="Skip to main content")).to_be_focused()
        finally:
            await browser.close()
    assert problems == []
