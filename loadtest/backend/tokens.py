"""JWTs as the matchmaker issues and checks them.

Verification pins the algorithm list and requires ``exp``, ``aud`` and ``sub``: that is the
difference between a matchmaker that can be fooled with ``alg: none`` and one that cannot, so the
two defects that weaken it live here, next to the correct code they weaken.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt

AUDIENCE = "matchmaker"
ALGORITHMS = ["HS256"]
REQUIRED_CLAIMS = ["exp", "aud", "sub"]


class TokenRejected(Exception):
    """A token was refused; ``reason`` is the label counted in ``gamebackend_jwt_rejections_total``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    player_id: str
    name: str


class TokenAuthority:
    """Issues and verifies the HS256 tokens handed out by ``/request_token``."""

    def __init__(self, secret: str, ttl: float, *, accept_alg_none: bool = False, accept_expired: bool = False) -> None:
        self._secret = secret
        self.ttl = ttl
        self._accept_alg_none = accept_alg_none
        self._accept_expired = accept_expired

    def issue(self, name: str) -> tuple[str, Identity]:
        now = int(time.time())
        player_id = "p_" + secrets.token_hex(8)
        claims = {
            "sub": player_id,
            "name": name,
            "iat": now,
            "exp": now + int(self.ttl),
            "aud": AUDIENCE,
            "jti": secrets.token_hex(12),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256"), Identity(player_id, name)

    def verify(self, token: str) -> Identity:
        """Return who the token speaks for, or raise :class:`TokenRejected` with a countable reason."""
        options = {"require": REQUIRED_CLAIMS, "verify_exp": not self._accept_expired}
        try:
            if self._accept_alg_none and _unverified_alg(token) == "none":
                # The defect: an unsigned token is believed. Claims are still checked, so the
                # probe proves exactly one thing - that the signature was skipped.
                claims = jwt.decode(
                    token,
                    options={**options, "verify_signature": False, "verify_aud": True},
                    audience=AUDIENCE,
                    algorithms=["none"],
                )
            else:
                claims = jwt.decode(token, self._secret, algorithms=ALGORITHMS, audience=AUDIENCE, options=options)
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("expired", "token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected("wrong_audience", "token is not for this audience") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected("missing_claim", f"token lacks the {exc.claim!r} claim") from exc
        except jwt.exceptions.InvalidSubjectError as exc:
            # PyJWT >= 2.10 refuses a non-string "sub" itself; it is the same fault as the empty
            # "sub" refused below, so it is counted under the same reason.
            raise TokenRejected("missing_claim", "token 'sub' claim must be a non-empty string") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise TokenRejected("alg_not_allowed", "token algorithm is not allowed") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenRejected("bad_signature", "token signature does not verify") from exc
        except jwt.DecodeError as exc:
            raise TokenRejected("malformed", "token is not a well-formed JWT") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenRejected("invalid", f"token is invalid: {exc}") from exc
        sub, name = claims.get("sub"), claims.get("name", "")
        if not isinstance(sub, str) or not sub:
            raise TokenRejected("missing_claim", "token 'sub' claim must be a non-empty string")
        if not _is_text(sub) or len(sub) > MAX_SUBJECT:
            # Only a forged token gets here (the alg-none defect): its subject would reach URLs,
            # pages and metrics, which a lone surrogate or a megabyte of text breaks.
            raise TokenRejected("invalid", "token 'sub' claim is not a short valid text")
        return Identity(sub, name[:64] if isinstance(name, str) and _is_text(name) else "")


def _unverified_alg(token: str) -> str:
    try:
        return str(jwt.get_unverified_header(token).get("alg", "")).lower()
    except jwt.DecodeError:
        return ""


#: Longest subject accepted: ours are 32 characters.
MAX_SUBJECT = 128


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
