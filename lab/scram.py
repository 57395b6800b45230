"""Role passwords on the lab's servers, set as SCRAM-SHA-256 verifiers.

A password sent as `ALTER ROLE ... PASSWORD 'plaintext'` travels in the
statement's text, where pg_stat_activity, a server log or an error report can
show it. The lab computes the verifier PostgreSQL would store (RFC 5802/7677, with
PostgreSQL's SASLprep rules) and sends only that, so the plaintext appears in
no statement, log or catalog; clients still log in with the plaintext.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import stringprep
import unicodedata

from psycopg import sql

from lab.postgres import PgServer, connect_admin

SCRAM_ITERATIONS = 4096
_SASLPREP_PROHIBITED = (
    stringprep.in_table_a1,
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def set_role_password(server: PgServer, role: str, password: str, dbname: str = "postgres") -> None:
    """Give `role` this password, creating it LOGIN SUPERUSER when missing.

    Only the SCRAM-SHA-256 verifier, computed here, reaches the server: the
    plaintext never appears in its statements, logs or catalogs.
    """
    verifier = scram_sha256_verifier(password)
    with connect_admin(server, dbname) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
        if exists is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier))
        )


def scram_sha256_verifier(password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """What PostgreSQL stores for `password`:
    SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (RFC 5802/7677), random salt."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _saslprep(password: str) -> bytes:
    """SASLprep (RFC 4013) the way PostgreSQL and libpq apply it: ASCII passes untouched,
    and a password SASLprep rejects is used as its raw UTF-8 bytes."""
    raw = password.encode("utf-8")
    if password.isascii():
        return raw
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char
        for char in password
        if not stringprep.in_table_b1(char)
    )
    prepared = unicodedata.normalize("NFKC", mapped)
    if not prepared or any(check(char) for char in prepared for check in _SASLPREP_PROHIBITED):
        return raw
    if any(stringprep.in_table_d1(char) for char in prepared) and (
        any(stringprep.in_table_d2(char) for char in prepared)
        or not stringprep.in_table_d1(prepared[0])
        or not stringprep.in_table_d1(prepared[-1])
    ):
        return raw
    return prepared.encode("utf-8")
