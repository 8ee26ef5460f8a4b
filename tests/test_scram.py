"""SCRAM-SHA-256 verifiers: libpq makes them, our one copy of RFC 5802's steps checks them."""

import base64
import hashlib
import hmac

import pytest

from prep_ops import db, scram


def _keys(verifier: str) -> tuple[bytes, bytes]:
    stored, server = verifier.rsplit("$", 1)[1].split(":")
    return base64.b64decode(stored), base64.b64decode(server)


def test_rfc_7677_example_exchange():
    """The keys of user "user" with password "pencil" sign RFC 7677's example exchange as the RFC says."""
    verifier = scram.scram_verifier("pencil", salt=base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), iterations=4096)
    stored_key, server_key = _keys(verifier)
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}".encode()
    server_signature = hmac.new(server_key, auth, "sha256").digest()
    assert base64.b64encode(server_signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    client_key = bytes(a ^ b for a, b in zip(base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
                                             hmac.new(stored_key, auth, "sha256").digest()))
    assert hashlib.sha256(client_key).digest() == stored_key


@pytest.mark.parametrize("password", ["plain-ascii-123", "pässwörd ﬁne", "ＰＡＳＳ\u00a0word", "pa'ss\"; word\\ --"])
def test_libpq_verifier_is_checked_by_ours(server, password):
    with db.connect(server, autocommit=True) as conn:
        made = scram.encrypt(conn, scram.Secret(password), "someone")
        again = scram.encrypt(conn, password, "someone")
    assert made.startswith("SCRAM-SHA-256$") and password not in made
    assert made != again  # a fresh salt each time
    assert scram.verifier_matches(password, made) and scram.verifier_matches(scram.Secret(password), again)
    assert not scram.verifier_matches(password + "!", made)


@pytest.mark.parametrize("stored", [None, "", "md5" + "0" * 32, "SCRAM-SHA-256$4096:not-base64!$x:y", "pencil"])
def test_anything_but_a_scram_verifier_never_matches(stored):
    assert not scram.verifier_matches("pencil", stored)
