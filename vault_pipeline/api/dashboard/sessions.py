"""Dashboard sessions: who signed in, until when, and the tokens that make its forms CSRF-safe.

Signing in with an API key yields a session cookie signed with the server's session secret
(itsdangerous): it carries the key's name and roles, an expiry and a per-session CSRF token,
never the key. The signature stops forgery and tampering; a server-side registry of live
session ids makes sign-out final (a copied cookie is dead once its session signed out) and a
restart of the API signs everyone out, which is the safe direction to fail. The registry lives
in the API process: one ``vault serve`` process per secret, as the embedded default runs.

The sign-in form itself carries a token too (login CSRF): a random nonce in a short-lived
cookie, and the same nonce signed in the form; a cross-site form post has neither.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadData, URLSafeTimedSerializer

from vault_pipeline.api.auth import Principal

SESSION_COOKIE = "vault_session"
LOGIN_COOKIE = "vault_login"
COOKIE_PATH = "/dashboard"
SESSION_TTL_S = 8 * 3600
LOGIN_TTL_S = 3600  # a sign-in form left open longer than this is shown again
MAX_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    name: str
    roles: frozenset[str]
    expires_at: float  # Unix time
    csrf: str

    def may(self, role: str) -> bool:
        # Viewing ("read") is open to audit keys too, as the API's log search is: an auditor who
        # may see raw bytes may see the figures around them.
        return "admin" in self.roles or role in self.roles or (role == "read" and "audit" in self.roles)


class SessionManager:
    def __init__(self, secret: bytes, *, ttl_s: float = SESSION_TTL_S, clock: Callable[[], float] = time.time,
                 max_sessions: int = MAX_SESSIONS) -> None:
        if not secret or len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        # Separate salts: a sign-in token can never be replayed as a session cookie or vice versa.
        self._sessions = URLSafeTimedSerializer(secret, salt="vault-dashboard-session")
        self._logins = URLSafeTimedSerializer(secret, salt="vault-dashboard-login")
        self.ttl_s, self.clock, self.max_sessions = ttl_s, clock, max_sessions
        self._live: dict[str, float] = {}  # sid -> expiry
        self._lock = threading.Lock()

    # sessions ------------------------------------------------------------------------------
    def issue(self, principal: Principal, *, now: float | None = None) -> tuple[Session, str]:
        """A new session for ``principal`` and its signed cookie value."""
        now = self.clock() if now is None else now
        session = Session(secrets.token_urlsafe(18), principal.name, frozenset(principal.roles), now + self.ttl_s,
                          secrets.token_urlsafe(24))
        with self._lock:
            self._prune(now)
            if len(self._live) >= self.max_sessions:  # drop the session closest to expiring
                del self._live[min(self._live, key=self._live.__getitem__)]
            self._live[session.sid] = session.expires_at
        payload = {"sid": session.sid, "sub": session.name, "roles": sorted(session.roles),
                   "exp": int(session.expires_at), "csrf": session.csrf}
        return session, self._sessions.dumps(payload)

    def read(self, cookie: str | None) -> Session | None:
        """The live session a cookie names; None when absent, forged, tampered, expired or signed out."""
        if not cookie or len(cookie) > 4096:
            return None
        now = self.clock()
        try:
            # max_age bounds the signature's own timestamp as well as the payload's expiry.
            payload = self._sessions.loads(cookie, max_age=self.ttl_s + 60)
        except BadData:
            return None
        try:
            session = Session(str(payload["sid"]), str(payload["sub"]), frozenset(map(str, payload["roles"])),
                              float(payload["exp"]), str(payload["csrf"]))
        except (KeyError, TypeError, ValueError):
            return None
        if session.expires_at <= now:
            return None
        with self._lock:
            live = self._live.get(session.sid)
        return session if live is not None and live > now else None

    def revoke(self, session: Session) -> None:
        with self._lock:
            self._live.pop(session.sid, None)

    def _prune(self, now: float) -> None:
        for sid in [sid for sid, expiry in self._live.items() if expiry <= now]:
            del self._live[sid]

    # CSRF ----------------------------------------------------------------------------------
    @staticmethod
    def csrf_ok(session: Session, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(session.csrf.encode(), presented.encode())

    def login_token(self) -> tuple[str, str]:
        """(nonce for the sign-in cookie, signed token for the form's hidden field)."""
        nonce = secrets.token_urlsafe(18)
        return nonce, self._logins.dumps(nonce)

    def login_ok(self, cookie_nonce: str | None, token: str | None) -> bool:
        if not cookie_nonce or not token or len(token) > 512:
            return False
        try:
            signed = self._logins.loads(token, max_age=LOGIN_TTL_S)
        except BadData:
            return False
        return isinstance(signed, str) and hmac.compare_digest(signed.encode(), cookie_nonce.encode())
