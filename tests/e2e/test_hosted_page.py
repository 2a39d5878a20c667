"""The hosted checkout page over real HTTP: what it shows, its forms, its headers, and what it refuses.
The same flows in a real browser are in tests/browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.e2e.conftest import RunningRuntime, launch, stop_and_check
from tests.e2e.helpers import Api, run_together

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
_FORM_TOKEN = re.compile(
    r'<form method="post" action="[^"]*/(?P<action>pay|cancel)">'
    r'<input type="hidden" name="form_token" value="(?P<token>[0-9a-f]+)">'
)


@pytest.fixture(scope="module")
def running() -> Iterator[RunningRuntime]:
    runtime = launch(
        {
            "LOCAL_API_KEYS": "demo:sk_test_demo",
            "LOCAL_RETURN_HOSTS": "example.com,shop.example",
            "LOCAL_MERCHANT_NAME": "Blue & Co",
        }
    )
    yield runtime
    stop_and_check(runtime)


@pytest.fixture
def api(running: RunningRuntime) -> Api:
    return Api(running.base_url, "sk_test_demo")


class Customer:
    """A browser without a browser: keeps the page's cookie and posts its forms."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()

    def open(self) -> requests.Response:
        return self.http.get(self.url, timeout=30, allow_redirects=False)

    def form_token(self, action: str = "cancel") -> str:
        """The token of the page's form for `action`, from a fresh rendering of the page."""
        return self.form_tokens()[action]

    def form_tokens(self) -> dict[str, str]:
        page = self.open()
        found = {match["action"]: match["token"] for match in _FORM_TOKEN.finditer(page.text)}
        assert found, "the page has no form"
        return found

    def post(self, action: str, **fields: str) -> requests.Response:
        return self.http.post(f"{self.url}/{action}", data=fields, timeout=30, allow_redirects=False)


def test_the_page_shows_what_the_customer_pays_for(api: Api) -> None:
    session = api.open_session(amount=129900, currency="JPY", description="Blue mug", referenceId="order-77")
    page = requests.get(session["url"], timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "¥129,900" in page.text and "Blue mug" in page.text and "order-77" in page.text
    assert '<p class="merchant">Blue &amp; Co</p>' in page.text  # LOCAL_MERCHANT_NAME
    assert "Time left" in page.text and re.search(r"\d+ minutes", page.text)
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "https://example.com" in policy  # form-action: where a cancel may send the customer
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text), "nothing is loaded from another host"


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [(5000, "USD", "$50.00"), (5000, "JPY", "¥5,000"), (1234, "KWD", "KWD 1.234"), (7, "EUR", "€0.07")],
)
def test_amounts_follow_the_currency_minor_units(api: Api, amount: int, currency: str, shown: str) -> None:
    session = api.open_session(amount=amount, currency=currency)
    assert shown in requests.get(session["url"], timeout=30).text


def test_head_answers_like_get_without_a_body(api: Api) -> None:
    session = api.open_session()
    head = requests.head(session["url"], timeout=30)
    get = requests.get(session["url"], timeout=30)
    assert head.status_code == get.status_code == 200
    assert (
        head.content == b""
        and head.headers["Content-Security-Policy"] == get.headers["Content-Security-Policy"]
    )


def test_cancel_goes_through_the_api_cancel_and_back_to_the_cancel_url(api: Api) -> None:
    # Given a session with a cancel URL that has its own query
    session = api.open_session(cancelUrl="https://shop.example/cancelled?cart=9")
    customer = Customer(session["url"])
    # When the customer cancels from the page
    answer = customer.post("cancel", form_token=customer.form_token())
    # Then they are sent to the cancel URL, told which session and how it ended
    assert answer.status_code == 303
    location = urlsplit(answer.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "shop.example", "/cancelled")
    assert parse_qs(location.query) == {
        "cart": ["9"],
        "sessionId": [session["sessionId"]],
        "status": ["CANCELLED"],
    }
    read = api.get(session["sessionId"])
    assert read["status"] == "CANCELLED" and read["cancellation"]["reasonType"] == "CUSTOMER_REQUESTED"
    cancelled = [event for event in api.events(session["sessionId"]) if event["type"] == "session.cancelled"]
    assert [event["actor"] for event in cancelled] == ["customer"]
    # And the page is now closed, saying why, and still what it was for
    closed = customer.open()
    assert closed.status_code == 410 and "cancelled" in closed.text
    assert (
        "$50.00" in closed.text and session["referenceId"] in closed.text and "Blue &amp; Co" in closed.text
    )
    assert "https://shop.example/cancelled" not in closed.text  # the way back is the return URL


def test_cancel_without_a_cancel_url_returns_to_the_return_url(api: Api) -> None:
    session = api.open_session(returnUrl="https://example.com/back")
    customer = Customer(session["url"])
    answer = customer.post("cancel", form_token=customer.form_token())
    assert answer.headers["Location"].startswith("https://example.com/back?sessionId=")


def test_a_payment_in_flight_that_cannot_be_cancelled_is_explained_and_nothing_changes(api: Api) -> None:
    session = api.open_session()
    api.start_transaction(session["sessionId"], "sandbox_bank_transfer")
    customer = Customer(session["url"])
    before = api.get(session["sessionId"])
    answer = customer.post("cancel", form_token=customer.form_token())
    assert answer.status_code == 409 and "can no longer be cancelled" in answer.text
    assert api.get(session["sessionId"]) == before


def test_forms_without_the_anti_forgery_token_are_refused_and_change_nothing(api: Api) -> None:
    session = api.open_session()
    customer = Customer(session["url"])
    token = customer.form_token()
    before = api.get(session["sessionId"])
    forged = [
        requests.post(f"{session['url']}/cancel", data={"form_token": token}, timeout=30),  # no cookie
        customer.post("cancel"),  # cookie but no token
        customer.post("cancel", form_token="0" * 64),
        customer.post("pay", form_token="0" * 64, method="sandbox_card"),
    ]
    assert [answer.status_code for answer in forged] == [403, 403, 403, 403]
    assert api.get(session["sessionId"]) == before


def test_paying_with_the_test_card_completes_and_sends_the_customer_back(api: Api) -> None:
    session = api.open_session(returnUrl="https://example.com/thanks")
    customer = Customer(session["url"])
    token = customer.form_token("pay")
    paid = customer.post("pay", form_token=token, method="sandbox_card")
    # Paid at once: straight on to the return URL, not through the closed page's 410
    back = f"https://example.com/thanks?sessionId={session['sessionId']}&status=COMPLETED"
    assert paid.status_code == 303 and paid.headers["Location"] == back
    again = customer.post("pay", form_token=token, method="sandbox_card")  # a double click
    assert again.status_code == 410 and "Payment received" in again.text
    read = api.get(session["sessionId"])
    assert read["status"] == "COMPLETED" and [tx["status"] for tx in read["transactions"]] == ["SETTLED"]
    # And the link, opened again, reads as paid, with what was paid for, and sends the customer on
    page = customer.open()
    assert page.status_code == 410 and "<h1>Payment received</h1>" in page.text
    assert "$50.00" in page.text and session["referenceId"] in page.text
    assert f'content="0; url={back.replace("&", "&amp;")}"' in page.text
    actors = {event["type"]: event["actor"] for event in api.events(session["sessionId"])}
    assert actors["transaction.created"] == "customer"
    assert actors["session.completed"] == "provider:sandbox_card"


def test_an_unknown_payment_method_is_refused(api: Api) -> None:
    session = api.open_session()
    customer = Customer(session["url"])
    answer = customer.post("pay", form_token=customer.form_token("pay"), method="cash")
    assert answer.status_code == 400 and api.get(session["sessionId"])["transactions"] == []


def test_the_pay_token_never_reaches_the_logs(api: Api, running: RunningRuntime) -> None:
    session = api.open_session()
    customer = Customer(session["url"])
    customer.post("cancel", form_token=customer.form_token())
    token = session["url"].rsplit("/", 1)[1]
    assert token not in running.stdout and token not in running.stderr


@pytest.mark.parametrize(
    ("cancel_url", "param"),
    [
        ("http://example.com/c", "cancelUrl"),
        ("https://evil.example/c", "cancelUrl"),
        ("https://user:pw@example.com/c", "cancelUrl"),
        ("https://example.com/c#x", "cancelUrl"),
    ],
)
def test_cancel_url_follows_the_return_url_rules(api: Api, cancel_url: str, param: str) -> None:
    answer = api.create_session(cancelUrl=cancel_url)
    assert answer.status == 400 and answer.error["param"] == param


def test_hosted_test_payments_can_be_turned_off() -> None:
    runtime = launch({"HOSTED_TEST_PAYMENTS": "false"})
    try:
        session = Api(runtime.base_url, "sk_test_demo").open_session()
        customer = Customer(session["url"])
        page = customer.open()
        assert page.status_code == 200 and 'name="method"' not in page.text
        # With no pay form on the page there is no pay token: the cancel form's does not pay
        refused = customer.post("pay", form_token=customer.form_token("cancel"), method="sandbox_card")
        assert refused.status_code == 403
        assert Api(runtime.base_url, "sk_test_demo").get(session["sessionId"])["transactions"] == []
    finally:
        stop_and_check(runtime)


def test_paying_with_stripes_test_visa_goes_through_the_stripe_provider(api: Api) -> None:
    session = api.open_session(returnUrl="https://example.com/thanks")
    customer = Customer(session["url"])
    assert 'value="stripe_card_visa"' in customer.open().text
    paid = customer.post("pay", form_token=customer.form_token("pay"), method="stripe_card_visa")
    assert paid.status_code == 303 and paid.headers["Location"].startswith("https://example.com/thanks?")
    read = api.get(session["sessionId"])
    [transaction] = read["transactions"]
    assert read["status"] == "COMPLETED"
    assert (transaction["provider"], transaction["status"]) == ("stripe", "SETTLED")
    assert transaction["providerReference"].startswith("pi_")


def test_a_form_token_serves_only_the_action_it_was_rendered_for(api: Api) -> None:
    # Given the page's two forms, each with its own token
    session = api.open_session()
    customer = Customer(session["url"])
    tokens = customer.form_tokens()
    assert set(tokens) == {"pay", "cancel"} and tokens["pay"] != tokens["cancel"]
    before = api.get(session["sessionId"])
    # When each token is posted to the other form's action
    crossed = [
        customer.post("pay", form_token=tokens["cancel"], method="sandbox_card"),
        customer.post("cancel", form_token=tokens["pay"]),
    ]
    # Then both are refused and nothing changes
    assert [answer.status_code for answer in crossed] == [403, 403]
    assert api.get(session["sessionId"]) == before
    # And a token of another checkout's page does not serve this one
    other = Customer(api.open_session()["url"])
    other_token = other.form_token("pay")
    customer.http.cookies.update(other.http.cookies)
    assert customer.post("pay", form_token=other_token, method="sandbox_card").status_code == 403
    assert api.get(session["sessionId"]) == before


def test_pay_is_refused_while_a_payment_is_in_flight_whatever_token_it_carries(api: Api) -> None:
    # Given a page rendered with its pay form, then a payment that starts elsewhere and stays in flight
    session = api.open_session()
    customer = Customer(session["url"])
    pay_token = customer.form_token("pay")
    api.start_transaction(session["sessionId"], "sandbox_bank_transfer")
    before = api.get(session["sessionId"])
    # When the customer posts the pay form they still hold
    refused = customer.post("pay", form_token=pay_token, method="sandbox_card")
    # Then the page answers 409, says why, offers no pay button, and nothing changes
    assert refused.status_code == 409 and "already being processed" in refused.text
    assert 'name="method"' not in refused.text
    assert api.get(session["sessionId"]) == before
    # And so does a page rendered now: no pay form to post, and its cancel token does not pay
    assert "pay" not in customer.form_tokens()
    crossed = customer.post("pay", form_token=customer.form_token("cancel"), method="sandbox_card")
    assert crossed.status_code in (403, 409)
    assert api.get(session["sessionId"]) == before


def test_two_pages_paying_at_once_make_one_payment(api: Api) -> None:
    # Given the checkout open in three tabs (three renderings, three cookies), each with its pay form,
    # rendered at once (so the page's function has an environment warm for each)
    session = api.open_session(returnUrl="https://example.com/thanks")
    tabs = [Customer(session["url"]) for _ in range(3)]
    tokens = run_together([lambda tab=tab: tab.form_token("pay") for tab in tabs])
    # When all are paid at the same instant, with Stripe's test card (in flight while Stripe answers)
    answers = run_together(
        [
            lambda tab=tab, token=token: tab.post("pay", form_token=token, method="stripe_card_visa")
            for tab, token in zip(tabs, tokens, strict=True)
        ]
    )
    # Then one payment is made; the other tabs are told a payment is under way, or that it is paid
    read = api.get(session["sessionId"])
    assert len(read["transactions"]) == 1 and read["status"] == "COMPLETED"
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses[0] == 303 and set(statuses[1:]) <= {409, 410}
