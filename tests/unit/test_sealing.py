from collections.abc import Iterator

import pytest

from checkout_core import server_key
from checkout_core.sealing import SealBroken, open_sealed, seal


@pytest.fixture(autouse=True)
def a_server_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SERVER_KEY", "ab" * 32)
    server_key.server_key.cache_clear()
    yield
    server_key.server_key.cache_clear()


def test_the_seal_takes_the_server_key_too(monkeypatch: pytest.MonkeyPatch) -> None:
    sealed = seal("payload", "demo /v1/sessions key-1")
    monkeypatch.setenv("SERVER_KEY", "cd" * 32)
    server_key.server_key.cache_clear()
    with pytest.raises(SealBroken):
        open_sealed(sealed, "demo /v1/sessions key-1")


def test_what_is_sealed_opens_with_the_same_key_only() -> None:
    sealed = seal('{"url": "https://pay.example/pay/secret-token"}', "demo /v1/sessions key-1")
    assert "secret-token" not in sealed
    assert open_sealed(sealed, "demo /v1/sessions key-1") == '{"url": "https://pay.example/pay/secret-token"}'
    with pytest.raises(SealBroken):
        open_sealed(sealed, "demo /v1/sessions key-2")


def test_a_seal_is_never_the_same_twice() -> None:
    assert seal("same", "k") != seal("same", "k")


def test_any_altered_byte_is_detected() -> None:
    import base64

    raw = bytearray(base64.b64decode(seal("payload", "k")))
    for index in (0, 20, len(raw) - 1):
        altered = bytearray(raw)
        altered[index] ^= 1
        with pytest.raises(SealBroken):
            open_sealed(base64.b64encode(bytes(altered)).decode(), "k")
