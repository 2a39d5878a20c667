"""A payment that needs the customer (3-D Secure), in headless Chromium: the hosted page's Pay sends the
customer to the local Stripe's authentication page, which sends them back to the hosted page's return
route, which records the outcome and sends them on."""

from __future__ import annotations

from pathlib import Path

import pytest
import stripe
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import Merchant
from tests.browser.test_hosted_page import WAIT_SECONDS, api, arrive_at, open_session, policy_violations
from tests.e2e.conftest import RunningRuntime
from tests.e2e.helpers import Api

pytestmark = pytest.mark.browser
__all__ = ["api"]  # the fixture, shared with the hosted page's tests
AUTHENTICATION_PAGE = "3D Secure test page"


def pay_with_3ds(browser: webdriver.Chrome, api: Api, merchant: Merchant) -> dict[str, object]:
    """Opens a checkout and pays with Stripe's card that always asks for 3-D Secure: on the bank's page."""
    session = open_session(api, merchant)
    browser.get(str(session["url"]))
    browser.find_element(By.CSS_SELECTOR, 'button.pay[value="stripe_card_3ds"]').click()
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.title == AUTHENTICATION_PAGE)
    assert policy_violations(browser) == []  # the page's form-action let Pay lead to the bank's page
    return session


def press(browser: webdriver.Chrome, label: str) -> None:
    browser.find_element(By.XPATH, f"//button[text()='{label}']").click()


def test_pay_authenticate_and_land_on_the_return_url_completed(
    browser: webdriver.Chrome, api: Api, merchant: Merchant, screenshots: Path
) -> None:
    session = pay_with_3ds(browser, api, merchant)
    browser.save_screenshot(str(screenshots / "06-authenticate.png"))
    press(browser, "Complete authentication")
    query = arrive_at(browser, f"{merchant.base_url}/thanks")
    assert query == {"sessionId": [session["sessionId"]], "status": ["COMPLETED"]}
    read = api.get(str(session["sessionId"]))
    assert read["status"] == "COMPLETED"
    assert [(tx["status"], tx["nextAction"]) for tx in read["transactions"]] == [("SETTLED", None)]


def test_a_failed_authentication_comes_back_to_the_page_which_offers_to_try_again(
    browser: webdriver.Chrome, api: Api, merchant: Merchant, screenshots: Path
) -> None:
    session = pay_with_3ds(browser, api, merchant)
    press(browser, "Fail authentication")
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: "did not go through" in b.find_element(By.TAG_NAME, "main").text
    )
    assert browser.current_url == session["url"]
    browser.save_screenshot(str(screenshots / "07-authentication-failed.png"))
    [failed] = api.get(str(session["sessionId"]))["transactions"]
    assert (failed["status"], failed["failureCode"]) == ("FAILED", "payment_intent_authentication_failure")
    # Trying again, with a card that needs nothing more, pays
    browser.find_element(By.CSS_SELECTOR, 'button.pay[value="stripe_card_visa"]').click()
    assert arrive_at(browser, f"{merchant.base_url}/thanks")["status"] == ["COMPLETED"]


def test_cancel_while_authenticating_then_come_back_to_a_closed_page(
    browser: webdriver.Chrome, api: Api, merchant: Merchant, runtime: RunningRuntime, screenshots: Path
) -> None:
    session = pay_with_3ds(browser, api, merchant)
    bank_page = browser.current_url
    # The checkout page, opened again meanwhile, says the payment waits for the customer, and cancels
    browser.get(str(session["url"]))
    main = browser.find_element(By.TAG_NAME, "main").text
    assert "waits for you to confirm it with your bank" in main
    assert browser.find_element(By.LINK_TEXT, "Continue to your bank").get_attribute("href") == bank_page
    assert browser.find_elements(By.CSS_SELECTOR, "button.pay") != []  # or pay another way
    browser.save_screenshot(str(screenshots / "08-waiting-for-the-customer.png"))
    browser.find_element(By.CSS_SELECTOR, "button.cancel").click()
    assert arrive_at(browser, f"{merchant.base_url}/cancelled")["status"] == ["CANCELLED"]
    # Cancelled at Stripe, not only here
    [transaction] = api.get(str(session["sessionId"]))["transactions"]
    assert transaction["status"] == "CANCELLED"
    emulator = stripe.StripeClient("sk_test_local", base_addresses={"api": runtime.stripe_url})
    assert emulator.v1.payment_intents.retrieve(transaction["providerReference"]).status == "canceled"
    # Then the customer, going back to the bank's page, is sent back to a closed checkout: there is
    # nothing left to authenticate
    browser.get(bank_page)
    WebDriverWait(browser, WAIT_SECONDS).until(
        lambda b: "cancelled, and no payment was taken" in b.find_element(By.TAG_NAME, "main").text
    )
    assert api.get(str(session["sessionId"]))["status"] == "CANCELLED"


def test_paying_another_way_cancels_the_payment_waiting_for_the_customer(
    browser: webdriver.Chrome, api: Api, merchant: Merchant, runtime: RunningRuntime
) -> None:
    session = pay_with_3ds(browser, api, merchant)
    # The customer leaves the bank's page, back to the checkout, and pays with another card
    browser.get(str(session["url"]))
    browser.find_element(By.CSS_SELECTOR, 'button.pay[value="stripe_card_visa"]').click()
    assert arrive_at(browser, f"{merchant.base_url}/thanks")["status"] == ["COMPLETED"]
    waiting, paid = api.get(str(session["sessionId"]))["transactions"]
    assert (waiting["status"], paid["status"]) == ("CANCELLED", "SETTLED")
    emulator = stripe.StripeClient("sk_test_local", base_addresses={"api": runtime.stripe_url})
    assert emulator.v1.payment_intents.retrieve(waiting["providerReference"]).status == "canceled"


def test_two_checkouts_in_one_browser_each_come_back_to_their_own_page(
    browser: webdriver.Chrome, api: Api, merchant: Merchant
) -> None:
    first = pay_with_3ds(browser, api, merchant)
    first_bank_page = browser.current_url
    second = pay_with_3ds(browser, api, merchant)
    # The customer fails the first checkout's authentication: back to the first checkout's page
    browser.get(first_bank_page)
    press(browser, "Fail authentication")
    WebDriverWait(browser, WAIT_SECONDS).until(lambda b: b.current_url == first["url"])
    assert "did not go through" in browser.find_element(By.TAG_NAME, "main").text
    assert second["url"] != first["url"]
