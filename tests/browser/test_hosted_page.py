"""The hosted checkout page and Swagger UI in headless Chromium, clicked as a customer and a developer would."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import Merchant
from tests.e2e.conftest import RunningRuntime
from tests.e2e.helpers import Api

pytestmark = pytest.mark.browser
WAIT_SECONDS = 30
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


@pytest.fixture
def api(runtime: RunningRuntime) -> Api:
    return Api(runtime.base_url, "sk_test_demo")


def open_session(api: Api, merchant: Merchant, **fields: Any) -> dict[str, Any]:
    return api.open_session(
        returnUrl=f"{merchant.base_url}/thanks",
        cancelUrl=f"{merchant.base_url}/cancelled",
        description="Blue ceramic mug",
        **fields,
    )


def arrive_at(browser: webdriver.Chrome, url_prefix: str) -> dict[str, list[str]]:
    """Waits for the browser to land on the merchant's page; the query it was sent back with."""
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.current_url.startswith(url_prefix))
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: "Back at the shop" in b.find_element(By.TAG_NAME, "body").text
    )
    return parse_qs(urlsplit(browser.current_url).query)


def policy_violations(browser: webdriver.Chrome) -> list[str]:
    """What the console says went wrong: blocked by the page's policy, or failed to load (the browser's
    own /favicon.ico guess, which no page here links to, aside)."""
    return [
        entry["message"]
        for entry in browser.get_log("browser")
        if ("Content Security Policy" in entry["message"] or entry["level"] == "SEVERE")
        and "/favicon.ico " not in entry["message"]
    ]


def test_customer_reads_the_amount_cancels_and_lands_on_the_cancel_url(
    browser: webdriver.Chrome, api: Api, merchant: Merchant, screenshots: Path
) -> None:
    # Given a yen session the customer opens from the merchant's link
    session = open_session(api, merchant, amount=129900, currency="JPY")
    browser.get(session["url"])
    # Then the page shows the amount in yen, the description and the reference
    assert browser.find_element(By.CSS_SELECTOR, ".amount").text == "¥129,900"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Blue ceramic mug"
    assert session["referenceId"] in browser.find_element(By.TAG_NAME, "dl").text
    assert browser.title == "Pay ¥129,900"
    browser.save_screenshot(str(screenshots / "01-open-desktop.png"))
    assert policy_violations(browser) == []
    # When the customer cancels
    browser.find_element(By.CSS_SELECTOR, "button.cancel").click()
    # Then they land on the merchant's cancel URL, told the session and its status
    query = arrive_at(browser, f"{merchant.base_url}/cancelled")
    assert query == {"sessionId": [session["sessionId"]], "status": ["CANCELLED"]}
    browser.save_screenshot(str(screenshots / "02-cancelled-at-merchant.png"))
    assert api.get(session["sessionId"])["status"] == "CANCELLED"


def test_customer_pays_with_the_test_card_and_is_sent_to_the_return_url(
    browser: webdriver.Chrome, api: Api, merchant: Merchant, screenshots: Path
) -> None:
    session = open_session(api, merchant)
    browser.get(session["url"])
    pay = browser.find_element(By.CSS_SELECTOR, "button.pay")
    assert pay.text == "Pay $50.00 with Test card (sandbox)"
    pay.click()
    query = arrive_at(browser, f"{merchant.base_url}/thanks")
    assert query == {"sessionId": [session["sessionId"]], "status": ["COMPLETED"]}
    browser.save_screenshot(str(screenshots / "03-paid-at-merchant.png"))
    read = api.get(session["sessionId"])
    assert read["status"] == "COMPLETED" and [tx["status"] for tx in read["transactions"]] == ["SETTLED"]


def test_the_page_works_from_the_keyboard(browser: webdriver.Chrome, api: Api, merchant: Merchant) -> None:
    session = open_session(api, merchant)
    browser.get(session["url"])
    pay_buttons = len(browser.find_elements(By.CSS_SELECTOR, "button.pay"))
    assert pay_buttons >= 1
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    order = []
    for _ in range(pay_buttons + 1):  # every button in the order it is read, each reached by Tab
        focused = browser.switch_to.active_element
        order.append(focused.get_attribute("class"))
        if order[-1] != "cancel":
            focused.send_keys(Keys.TAB)
    assert order == ["pay"] * pay_buttons + ["cancel"]
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert arrive_at(browser, f"{merchant.base_url}/cancelled")["status"] == ["CANCELLED"]


def test_on_a_phone_nothing_overflows(
    browser: webdriver.Chrome, api: Api, merchant: Merchant, screenshots: Path
) -> None:
    browser.set_window_size(390, 844)
    session = open_session(api, merchant, amount=1234, currency="KWD", referenceId="order-" + "9" * 58)
    browser.get(session["url"])
    assert browser.find_element(By.CSS_SELECTOR, ".amount").text == "KWD 1.234"
    overflow = browser.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow == 0
    browser.save_screenshot(str(screenshots / "04-open-phone.png"))


def test_a_closed_link_says_why_and_links_back(
    browser: webdriver.Chrome, api: Api, merchant: Merchant, screenshots: Path
) -> None:
    session = open_session(api, merchant)
    assert api.cancel(session["sessionId"]).status == 200
    browser.get(session["url"])
    text = browser.find_element(By.TAG_NAME, "main").text
    assert "This checkout is closed" in text and "cancelled, and no payment was taken" in text
    assert "$50.00" in text and session["referenceId"] in text  # still what it was for
    link = browser.find_element(By.LINK_TEXT, "Return to the merchant").get_attribute("href")
    assert link == f"{merchant.base_url}/thanks?sessionId={session['sessionId']}&status=CANCELLED"
    browser.save_screenshot(str(screenshots / "05-closed.png"))


def test_the_readme_screenshots_show_the_page_as_it_is(
    browser: webdriver.Chrome, api: Api, merchant: Merchant
) -> None:
    """docs/images/hosted-page*.png, which the README shows, are rewritten here from the running page."""
    # Given a session as a merchant would make it
    session = open_session(api, merchant, amount=129900, currency="JPY", referenceId="order-1042")
    browser.set_window_size(1000, 640)
    browser.get(session["url"])
    # Then the page names the merchant (LOCAL_MERCHANT_NAME) above the order
    assert browser.find_element(By.CSS_SELECTOR, ".merchant").text == "Demo Store"
    # And no two buttons touch
    boxes = [button.rect for button in browser.find_elements(By.CSS_SELECTOR, "button")]
    assert len(boxes) >= 3  # two test methods and cancel
    gaps = [lower["y"] - (upper["y"] + upper["height"]) for upper, lower in pairwise(boxes)]
    assert min(gaps) >= 8, gaps
    assert policy_violations(browser) == []
    browser.save_screenshot(str(DOCS_IMAGES / "hosted-page.png"))
    browser.set_window_size(390, 844)
    browser.get(session["url"])
    browser.save_screenshot(str(DOCS_IMAGES / "hosted-page-phone.png"))


@pytest.mark.parametrize("path", ["/v1/docs", "/v1/docs/"])
def test_swagger_ui_renders_offline(
    browser: webdriver.Chrome, runtime: RunningRuntime, screenshots: Path, path: str
) -> None:
    # This machine reaches no CDN: the page renders only if the service serves every asset itself.
    browser.get(f"{runtime.base_url}{path}")
    # Swagger UI renders in steps, replacing elements: one read between two renders is stale, not wrong.
    rendering = WebDriverWait(browser, WAIT_SECONDS, ignored_exceptions=[StaleElementReferenceException])
    rendering.until(
        lambda b: "Checkout Sessions API" in b.find_element(By.CSS_SELECTOR, ".swagger-ui .info").text
    )
    rendering.until(
        lambda b: any(
            op.text.endswith("/v1/sessions/{sessionId}/cancel")
            for op in b.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
        )
    )
    assert policy_violations(browser) == []
    if path == "/v1/docs":
        browser.save_screenshot(str(screenshots / "06-swagger-ui.png"))
