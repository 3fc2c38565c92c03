"""API tokens: shown once, kept hashed, checked in constant time, revocable."""

from __future__ import annotations

import json
import stat

import pytest

from speakergmm.serve import TokenError, TokenStore, tokens_path


def test_a_token_is_kept_only_as_a_hash_in_a_private_file(tmp_path):
    tokens = TokenStore(tokens_path(tmp_path / "speakers.db"))
    secret, record = tokens.create("read", "a label")
    text = tokens.path.read_text()
    assert secret.split("_")[-1] not in text and record.sha256 in text
    assert stat.S_IMODE(tokens.path.stat().st_mode) == 0o600
    assert tokens.path.name == "speakers.db.tokens.json"
    assert tokens.check(secret) == record
    assert [t.id for t in tokens.list()] == [record.id]


def test_only_the_exact_token_passes(tmp_path):
    tokens = TokenStore(tmp_path / "t.json")
    secret, _ = tokens.create("write")
    other, _ = TokenStore(tmp_path / "other.json").create("write")
    tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for presented in (None, "", "Bearer " + secret, secret + "x", tampered, other,
                      secret.replace("sgm_", "sgx_")):
        assert tokens.check(presented) is None, presented


def test_scopes_and_revocation_take_effect_in_another_reader(tmp_path):
    path = tmp_path / "t.json"
    admin, server = TokenStore(path), TokenStore(path)
    read, r = admin.create("read")
    write, w = admin.create("write")
    assert server.check(read).allows("read") and not server.check(read).allows("write")
    assert server.check(write).allows("read") and server.check(write).allows("write")
    admin.revoke(r.id)
    assert server.check(read) is None and server.check(write) == w
    with pytest.raises(TokenError, match="no token"):
        admin.revoke(r.id)
    with pytest.raises(TokenError, match="unknown scope"):
        admin.create("admin")


def test_a_damaged_token_file_is_one_clear_error(tmp_path):
    path = tmp_path / "t.json"
    for text in ("{", json.dumps({"format": "x", "tokens": []}),
                 json.dumps({"format": "speakergmm-tokens", "tokens": [{"id": 1}]})):
        path.write_text(text)
        with pytest.raises(TokenError, match="unreadable token file"):
            TokenStore(path).check("sgm_000000000000_" + "a" * 43)
