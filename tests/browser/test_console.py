"""The console in headless Chromium, used as a merchant would: sign in, find a session by its reference,
cancel it and watch the timeline grow; watch a failing webhook endpoint and resend once it recovers;
another tenant's session is not there; sign-out ends the cookie; by keyboard alone; at phone width; and
never a Content-Security-Policy violation. Screenshots of each view go to tests/browser/out/."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.test_hosted_page import policy_violations
from tests.e2e.conftest import RunningRuntime, launch, stop_and_check
from tests.e2e.helpers import Api, wait_for_status
from tests.webhook_receiver import Received, Receiver

pytestmark = pytest.mark.browser
WAIT_SECONDS = 30


@pytest.fixture(scope="module")
def runtime() -> Iterator[RunningRuntime]:
    """Two tenants: the console must never show one the other's data."""
    running = launch(
        {"LOCAL_API_KEYS": "demo:sk_test_demo,other:sk_test_other", "LOCAL_RETURN_HOSTS": "example.com"}
    )
    yield running
    stop_and_check(running)


@pytest.fixture
def api(runtime: RunningRuntime) -> Api:
    return Api(runtime.base_url, "sk_test_demo")


def open_session(api: Api, reference: str) -> dict[str, object]:
    return api.open_session(referenceId=reference, returnUrl="https://example.com/back")


def sign_in(browser: webdriver.Chrome, runtime: RunningRuntime, key: str = "sk_test_demo") -> None:
    browser.get(f"{runtime.base_url}/console")
    field = browser.find_element(By.ID, "api_key")
    field.send_keys(key)
    field.submit()
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, "header nav"))


def wait(browser: webdriver.Chrome) -> WebDriverWait:  # type: ignore[type-arg]
    """A wait that reads the page again when it was replaced under a lookup (a navigation in between)."""
    return WebDriverWait(
        browser, WAIT_SECONDS, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
    )


def heading(browser: webdriver.Chrome) -> str:
    return str(browser.find_element(By.TAG_NAME, "h1").text)


def no_overflow(browser: webdriver.Chrome) -> bool:
    return bool(browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth"))


def test_find_by_reference_cancel_and_watch_the_timeline_grow(
    browser: webdriver.Chrome, runtime: RunningRuntime, api: Api, screenshots: Path
) -> None:
    # Given sessions of every kind, so the overview has something to draw
    reference = f"order-{uuid.uuid4().hex[:8]}"
    wanted = open_session(api, reference)
    for i in range(3):
        open_session(api, f"filler-{i}")
    cancelled = open_session(api, "cancelled-one")
    api.cancel(str(cancelled["sessionId"]))
    pending = open_session(api, "waiting-bank-transfer")
    api.start_transaction(str(pending["sessionId"]), provider="sandbox_bank_transfer")
    api.cancel(str(pending["sessionId"]))
    # When the merchant signs in
    sign_in(browser, runtime)
    assert heading(browser) == "Overview"
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert "waiting-bank-transfer" in browser.find_element(By.TAG_NAME, "main").text
    # The whole overview in one picture: docs/images/console-overview.png (the README's) is a copy of it
    browser.set_window_size(1280, 1700)
    browser.save_screenshot(str(screenshots / "console-overview.png"))
    browser.set_window_size(1280, 900)
    # And finds the session by its reference
    browser.find_element(By.LINK_TEXT, "Sessions").click()
    search = wait(browser).until(lambda b: b.find_element(By.ID, "q"))
    search.send_keys(reference)
    search.submit()
    wait(browser).until(lambda b: reference in b.current_url)
    rows = browser.find_elements(By.CSS_SELECTOR, "main table tbody tr")
    assert len(rows) == 1 and reference in rows[0].text
    browser.save_screenshot(str(screenshots / "console-sessions.png"))
    rows[0].find_element(By.TAG_NAME, "a").click()
    wait(browser).until(lambda b: b.find_element(By.ID, "reason"))  # the session's page, with its cancel
    timeline_before = len(browser.find_elements(By.CSS_SELECTOR, "#timeline + .table-wrap tbody tr"))
    browser.save_screenshot(str(screenshots / "console-session.png"))
    # And cancels it with a reason
    browser.find_element(By.ID, "reason").send_keys("Customer phoned to cancel")
    browser.find_element(By.CSS_SELECTOR, "button.danger").click()
    # Then the session is cancelled through the API's own cancel, by the console, and the timeline grew
    wait(browser).until(lambda b: "The session was cancelled" in b.page_source)
    session = api.get(str(wanted["sessionId"]))
    assert session["status"] == "CANCELLED"
    assert session["cancellation"]["reason"] == "Customer phoned to cancel"
    assert api.events(str(wanted["sessionId"]))[-1]["actor"] == "console"
    timeline_after = browser.find_elements(By.CSS_SELECTOR, "#timeline + .table-wrap tbody tr")
    assert len(timeline_after) == timeline_before + 1
    assert "session.cancelled" in timeline_after[-1].text and "console" in timeline_after[-1].text
    browser.save_screenshot(str(screenshots / "console-session-cancelled.png"))
    assert policy_violations(browser) == []


def test_a_failing_endpoint_shows_its_last_error_and_a_resend_succeeds_once_it_recovers(
    browser: webdriver.Chrome, runtime: RunningRuntime, api: Api, screenshots: Path
) -> None:
    healthy = {"up": False}

    def plan(received: Received) -> tuple[int, dict[str, str]]:
        return (200, {}) if healthy["up"] else (500, {})

    receiver = Receiver(plan)
    try:
        sign_in(browser, runtime)
        # Given an endpoint added in the console (its secret shown once)
        browser.find_element(By.LINK_TEXT, "Webhook endpoints").click()
        wait(browser).until(lambda b: b.find_element(By.ID, "url")).send_keys(receiver.url)
        browser.find_element(By.ID, "description").send_keys("Order system")
        browser.find_element(By.CSS_SELECTOR, "input[value='session.created']").click()
        browser.find_element(By.CSS_SELECTOR, "main form[method=post] button[type=submit]").click()
        # (a click that posts a form may return before the answer replaces the page: each page is waited for)
        secret = wait(browser).until(lambda b: b.find_element(By.ID, "secret")).text
        assert secret.startswith("whsec_")
        # The answer to the post shows the new endpoint; its own page is where its forms post
        test_form = browser.find_element(By.CSS_SELECTOR, "form[action$='/test']").get_attribute("action")
        endpoint_page = str(test_form).removesuffix("/test")
        # When a session is created while the receiver fails
        session = open_session(api, "webhook-watch")
        receiver_saw = wait(browser).until(lambda b: receiver.of_session(str(session["sessionId"])))
        assert receiver_saw[0].answered == 500

        # Then the delivery log shows the failure and its last error
        def failed_row(b: webdriver.Chrome) -> object:
            b.get(endpoint_page)
            rows = b.find_elements(By.CSS_SELECTOR, "main table tbody tr")
            return next((r for r in rows if "session.created" in r.text and "500" in r.text), None)

        row = wait(browser).until(failed_row)
        assert "answered 500" in row.text or "500" in row.text
        browser.save_screenshot(str(screenshots / "console-endpoint-failing.png"))
        # When the receiver recovers and the merchant resends
        healthy["up"] = True
        row.find_element(By.XPATH, ".//button[normalize-space()='Resend']").click()
        wait(browser).until(lambda b: "queued for one more attempt" in b.page_source)

        # Then the delivery succeeds
        def succeeded(b: webdriver.Chrome) -> bool:
            b.get(endpoint_page)
            return any(
                "session.created" in r.text and "SUCCEEDED" in r.text
                for r in b.find_elements(By.CSS_SELECTOR, "main table tbody tr")
            )

        wait(browser).until(succeeded)
        assert receiver.succeeded(str(session["sessionId"]))
        browser.save_screenshot(str(screenshots / "console-endpoint.png"))
        browser.find_element(By.LINK_TEXT, "Webhook endpoints").click()
        wait(browser).until(lambda b: b.find_element(By.ID, "url"))
        browser.save_screenshot(str(screenshots / "console-webhooks.png"))
        assert policy_violations(browser) == []
    finally:
        receiver.close()


def test_another_tenants_session_is_not_found(
    browser: webdriver.Chrome, runtime: RunningRuntime, api: Api
) -> None:
    theirs = Api(runtime.base_url, "sk_test_other").open_session(
        referenceId="their-order", returnUrl="https://example.com/back"
    )
    sign_in(browser, runtime)
    answer = requests.get(
        f"{runtime.base_url}/console/sessions/{theirs['sessionId']}",
        cookies={c["name"]: c["value"] for c in browser.get_cookies()},
        allow_redirects=False,
        timeout=30,
    )
    assert answer.status_code == 404
    browser.get(f"{runtime.base_url}/console/sessions/{theirs['sessionId']}")
    assert heading(browser) == "Session not found"
    assert "their-order" not in browser.page_source


def test_sign_out_makes_the_old_cookie_useless(browser: webdriver.Chrome, runtime: RunningRuntime) -> None:
    sign_in(browser, runtime)
    old = {c["name"]: c["value"] for c in browser.get_cookies()}
    assert "console_session" in old
    browser.find_element(By.XPATH, "//header//button[normalize-space()='Sign out']").click()
    wait(browser).until(lambda b: b.find_elements(By.ID, "api_key"))
    again = requests.get(
        f"{runtime.base_url}/console/sessions", cookies=old, allow_redirects=False, timeout=30
    )
    assert again.status_code == 303 and again.headers["Location"].endswith("/console")


def test_keyboard_only_sign_in_find_and_cancel(
    browser: webdriver.Chrome, runtime: RunningRuntime, api: Api
) -> None:
    reference = f"kbd-{uuid.uuid4().hex[:8]}"
    session = open_session(api, reference)
    browser.get(f"{runtime.base_url}/console")
    actions = webdriver.ActionChains(browser)

    def tab_to(matches: object, limit: int = 60) -> None:
        for _ in range(limit):
            webdriver.ActionChains(browser).send_keys(Keys.TAB).perform()
            active = browser.switch_to.active_element
            if matches(active):  # type: ignore[operator]
                return
        raise AssertionError("never reached by Tab")

    tab_to(lambda e: e.get_attribute("id") == "api_key")
    actions.send_keys("sk_test_demo" + Keys.ENTER).perform()
    wait(browser).until(lambda b: heading(b) == "Overview")
    tab_to(lambda e: e.text == "Sessions")
    webdriver.ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait(browser).until(lambda b: heading(b) == "Sessions")
    tab_to(lambda e: e.get_attribute("id") == "q")
    webdriver.ActionChains(browser).send_keys(reference + Keys.ENTER).perform()
    wait(browser).until(lambda b: reference in b.current_url)
    tab_to(lambda e: e.text == session["sessionId"])
    webdriver.ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait(browser).until(lambda b: heading(b).startswith("Session "))
    tab_to(lambda e: e.text == "Cancel session")
    webdriver.ActionChains(browser).send_keys(Keys.ENTER).perform()
    wait(browser).until(lambda b: "The session was cancelled" in b.page_source)
    assert wait_for_status(api, str(session["sessionId"]), "CANCELLED")["status"] == "CANCELLED"
    assert policy_violations(browser) == []


def test_every_view_fits_a_phone(
    browser: webdriver.Chrome, runtime: RunningRuntime, api: Api, screenshots: Path
) -> None:
    session = open_session(api, "a-rather-long-reference-that-should-wrap-on-a-phone-screen-0123456789"[:64])
    receiver = Receiver()
    try:
        endpoint = dict(api.request("POST", "/v1/webhook-endpoints", {"url": receiver.url}).body)
        browser.set_window_size(390, 844)
        sign_in(browser, runtime)
        views = {
            "overview": "/console",
            "sessions": "/console/sessions",
            "session": f"/console/sessions/{session['sessionId']}",
            "webhooks": "/console/webhooks",
            "endpoint": f"/console/webhooks/{endpoint['endpointId']}",
        }
        for name, path in views.items():
            browser.get(f"{runtime.base_url}{path}")
            assert no_overflow(browser), name
            browser.save_screenshot(str(screenshots / f"console-phone-{name}.png"))
        assert policy_violations(browser) == []
    finally:
        receiver.close()
