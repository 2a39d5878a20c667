from checkout_core.repository import MAX_REQUEST_TOKEN_LENGTH, request_token

ITEMS = [{"Update": {"TableName": "t", "Key": {"pk": {"S": "SESSION#1"}}}}]


def test_the_same_logical_write_has_the_same_token() -> None:
    assert request_token("s1", 3, "lock", ITEMS) == request_token("s1", 3, "lock", [dict(ITEMS[0])])


def test_a_token_fits_dynamodb_and_is_printable_ascii() -> None:
    token = request_token("s1", 3, "lock", ITEMS)
    assert 1 <= len(token) <= MAX_REQUEST_TOKEN_LENGTH and token.isascii() and token.isprintable()


def test_any_difference_in_the_write_gives_another_token() -> None:
    base = request_token("s1", 3, "lock", ITEMS)
    other_items = [{"Update": {"TableName": "t", "Key": {"pk": {"S": "SESSION#2"}}}}]
    assert (
        len(
            {
                base,
                request_token("s2", 3, "lock", ITEMS),
                request_token("s1", 4, "lock", ITEMS),
                request_token("s1", 3, "cancel", ITEMS),
                request_token("s1", 3, "lock", other_items),
            }
        )
        == 5
    )
