"""The operator console in a real headless browser (Debian's chromium, driven by selenium), on a real
worker and broker: pages load, live data appears, an order going at risk shows up without a reload.

Screenshots go under the test's tmp dir (the path is printed; ``pytest -s`` shows it). Without chromium
the test is skipped, except in CI (``CI=true``), where it fails: ``.ci/run`` installs chromium.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_promise_and_risk import click_and_collect_option, stock_up
from tests.worker_process import Events, WorkerProcess

WAIT_S = 30


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: .ci/run installs chromium and chromium-driver)")
    pytest.skip(f"{reason}: apt-get install chromium chromium-driver; pip install selenium")


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        _unavailable("chromium or chromedriver not found on PATH")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    session.set_page_load_timeout(WAIT_S)
    try:
        yield session
    finally:
        session.quit()


def wait_for(browser: Any, condition: Callable[[], Any], what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_S, poll_frequency=0.2).until(lambda _: condition(), message=what)


def test_the_console_shows_live_data_and_an_order_going_at_risk_without_a_reload(
    browser: Any, worker: WorkerProcess, events: Events, tmp_path: Path
) -> None:
    # browser first: without chromium the test is skipped before a worker starts. It also closes
    # last, so the worker stops with the at-risk page's event stream still open.
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nconsole screenshots: {shots}")

    def shot(name: str) -> None:
        browser.save_screenshot(str(shots / f"{name}.png"))

    def text_of(test_id: str) -> str:
        """The element's text; a live region may be swapped while it is read: read it again."""
        for _ in range(5):
            try:
                found = browser.find_elements(By.CSS_SELECTOR, f'[data-testid="{test_id}"]')
                return str(found[0].text) if found else ""
            except StaleElementReferenceException:
                continue
        raise AssertionError(f"{test_id} kept changing")

    def payload_shown() -> str:
        try:
            browser.find_element(By.CSS_SELECTOR, '[data-testid="dead-letters"] details summary').click()
            return str(browser.find_element(By.CSS_SELECTOR, '[data-testid="dead-letters"] pre.payload').text)
        except StaleElementReferenceException:
            return ""

    stock_up(worker, events, ("SKU-TENT", "STORE-AMSTERDAM-01", 6), ("SKU-TENT", "DC-NORTH", 20))

    browser.get(worker.url("/console"))
    assert "OMS console" in browser.title and "SKUs with availability" in text_of("overview")
    shot("01-overview")

    browser.get(worker.url("/console/availability?sku=SKU-TENT"))
    wait_for(browser, lambda: "STORE-AMSTERDAM-01" in text_of("locations"), "SKU-TENT's locations shown")
    assert "webshop" in text_of("channels")
    shot("02-availability")

    browser.get(worker.url("/console/network?sku=SKU-TENT"))
    assert browser.find_elements(By.CSS_SELECTOR, 'svg [data-location="DC-NORTH"]')
    shot("03-network")

    # Dead letters: the page is open, then a bad placement arrives; it appears live, its <script> as text.
    browser.get(worker.url("/console/dead-letters"))
    wait_for(browser, lambda: browser.find_elements(By.CSS_SELECTOR, '[data-testid="dlq-live"]'), "page")
    browser.execute_script("window.__notReloaded = true")
    hostile = b'{"order_id": "ORDER-BAD", "note": "<script>window.__pwned = 1</script>"}'
    events.send("oms.orders.placed.v1", b"ORDER-BAD", hostile)
    events.flush()
    wait_for(browser, lambda: "ORDER-BAD" in text_of("dead-letters"), "the dead letter shown live")
    payload = wait_for(browser, payload_shown, "the dead letter's payload")
    assert "<script>window.__pwned = 1</script>" in payload
    assert browser.execute_script("return window.__pwned") is None
    assert browser.execute_script("return window.__notReloaded") is True
    assert "oms.orders.placed.v1" in text_of("dead-letters")
    shot("04-dead-letters")

    # At risk: the page is open with nothing at risk; an order whose pick does not start goes at risk.
    browser.get(worker.url("/console/at-risk"))
    wait_for(browser, lambda: "No order is at risk" in text_of("at-risk-live"), "an empty at-risk list")
    browser.execute_script("window.__notReloaded = true")
    shot("05-at-risk-empty")
    events.order_placed(
        "ORDER-CC-1",
        click_and_collect_option(timedelta(seconds=63)),
        {"pickup_store_id": "STORE-AMSTERDAM-01"},
    )
    events.flush()
    wait_for(browser, lambda: "ORDER-CC-1" in text_of("at-risk"), "ORDER-CC-1 on the open at-risk page")
    row = text_of("at-risk")
    assert "pick_not_started" in row and "expedite" in row
    assert browser.execute_script("return window.__notReloaded") is True, "the page was reloaded"
    shot("06-at-risk-live")

    browser.find_element(By.LINK_TEXT, "ORDER-CC-1").click()
    wait_for(browser, lambda: text_of("order-status") == "at_risk", "the order page")
    timeline = text_of("timeline")
    assert "placed" in timeline and "milestone pick_start" in timeline
    shot("07-order")

    browser.get(worker.url("/console/orders/NO-SUCH-ORDER"))
    assert "No order 'NO-SUCH-ORDER'" in browser.page_source

    # Left open while the worker stops (teardown): its event stream must not hold the shutdown up.
    browser.get(worker.url("/console/at-risk"))
    wait_for(browser, lambda: "ORDER-CC-1" in text_of("at-risk"), "the at-risk page again")
