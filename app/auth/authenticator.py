"""Turn a request's credentials into a Principal, or refuse it with 401.

Bearer tokens shaped like a JWT are verified as JWTs when `jwt` is enabled; anything else is looked
up as an API key (by its SHA-256, in constant time) when `api_key` is enabled. Error messages
never contain the token.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt

from app import telemetry
from app.auth.jwks import JwksCache, JwksUnavailable
from app.auth.principal import ANONYMOUS, Principal
from app.config.auth import HMAC_ALGORITHMS, AuthConfig, JwtConfig
from app.core.jsonrpc import ErrorCode, GatewayError

log = logging.getLogger("mcp_gateway.auth")


class AuthFailure(GatewayError):
    """401 with a `WWW-Authenticate` challenge; `kind` says which credential type failed."""

    def __init__(self, description: str, credential: str):
        super().__init__(
            ErrorCode.UNAUTHORIZED,
            f"Unauthorized: {description}",
            http_status=401,
            headers={"www-authenticate": f'Bearer realm="mcp-gateway", error="invalid_token", error_description="{description}"'},
        )
        self.credential = credential


class AuthSetupError(Exception):
    """Authentication cannot start (a secret or key file is missing); names the config key."""


def _scopes(claims: Mapping[str, Any], claim: str) -> frozenset[str]:
    value = claims.get(claim, claims.get("scp", ""))
    items = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
    return frozenset(str(item) for item in items)


class JwtVerifier:
    def __init__(self, config: JwtConfig, environ: Mapping[str, str]):
        self.config = config
        self.jwks = JwksCache(config.jwks_url, config.jwks_cache_seconds, config.jwks_min_refresh_seconds) if config.jwks_url else None
        self.static_key: Any = None
        if set(config.algorithms) <= HMAC_ALGORITHMS:
            secret = environ.get(config.secret_env or "")
            if not secret:
                raise AuthSetupError(f"auth.jwt.secret_env: environment variable {config.secret_env} is not set")
            self.static_key = secret
        elif config.public_key_file:
            try:
                self.static_key = Path(config.public_key_file).read_text()
            except OSError as exc:
                raise AuthSetupError(f"auth.jwt.public_key_file: cannot read ({exc.strerror})") from None

    async def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self.config.algorithms:
                raise AuthFailure("token algorithm not accepted", "jwt")
            key = self.static_key
            if self.jwks is not None and key is None:
                try:
                    jwk = await self.jwks.key(header.get("kid"))
                except JwksUnavailable:
                    raise AuthFailure("signing keys unavailable", "jwt") from None
                if jwk is None:
                    raise AuthFailure("unknown signing key", "jwt")
                key = jwk
            claims = jwt.decode(
                token,
                key,
                algorithms=self.config.algorithms,
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options={"require": ["exp"], "verify_aud": self.config.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailure("token expired", "jwt") from None
        except jwt.InvalidAudienceError:
            raise AuthFailure("token audience not accepted", "jwt") from None
        except jwt.InvalidIssuerError:
            raise AuthFailure("token issuer not accepted", "jwt") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthFailure(f"token lacks the '{exc.claim}' claim", "jwt") from None
        except jwt.PyJWTError:
            raise AuthFailure("invalid token", "jwt") from None
        subject = claims.get(self.config.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise AuthFailure(f"token lacks the '{self.config.subject_claim}' claim", "jwt")
        issuer = claims.get("iss")
        return Principal(subject, _scopes(claims, self.config.scope_claim), "jwt", issuer if isinstance(issuer, str) else None)

    async def close(self) -> None:
        if self.jwks is not None:
            await self.jwks.close()


class Authenticator:
    def __init__(self, config: AuthConfig, environ: Mapping[str, str] | None = None):
        self.config = config
        self.modes = config.modes
        self.jwt = JwtVerifier(config.jwt, os.environ if environ is None else environ) if "jwt" in self.modes and config.jwt else None
        self.api_keys = {key.sha256: key for key in config.api_keys} if "api_key" in self.modes else {}

    @property
    def enabled(self) -> bool:
        return self.modes != {"none"}

    def credential_type(self, token: str | None) -> str:
        """What a token would be checked as (for metrics): `jwt`, `api_key` or `none`."""
        if not self.enabled:
            return "none"
        if token and self.jwt is not None and token.count(".") == 2:
            return "jwt"
        return "api_key" if self.api_keys else "jwt"

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller, counted in `mcp_gateway_auth_attempts_total{type, result}` under an
        `auth.validate` span (nothing is counted when authentication is off)."""
        if not self.enabled:
            return ANONYMOUS
        with telemetry.span(telemetry.AUTH_VALIDATE) as span:
            try:
                principal = await self._verify(headers)
            except AuthFailure as failure:
                telemetry.auth_attempt(failure.credential, "failure")
                # The "Authentication failures" query (docs/operations.md) looks for exactly this
                # line: level error, this message, and the request's user (the caller is not
                # known, so `anonymous` under the user-label rule; absent with `off`).
                fields = {"auth_type": failure.credential, "error": failure.message}
                user = telemetry.current_instruments().user(ANONYMOUS)
                if user is not None:
                    fields["user"] = user
                log.error("authentication failed", extra=fields)
                raise
            telemetry.auth_attempt(principal.kind, "success")
            user = telemetry.current_instruments().user(principal)
            if user is not None:
                span.set_attribute("user", user)
            return principal

    async def _verify(self, headers: Mapping[str, str]) -> Principal:
        authorization = headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        kind = self.credential_type(token)
        if not authorization:
            raise AuthFailure("missing bearer token", kind)
        if scheme.lower() != "bearer" or not token:
            raise AuthFailure("expected 'Authorization: Bearer <token>'", kind)
        if kind == "jwt" and self.jwt is not None:
            return await self.jwt.verify(token)
        return self._api_key(token)

    def _api_key(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode()).hexdigest()
        match = None
        for stored, key in self.api_keys.items():
            if hmac.compare_digest(stored, digest):
                match = key
        if match is None:
            raise AuthFailure("unknown API key", "api_key")
        return Principal(match.subject, frozenset(match.scopes), "api_key")

    async def close(self) -> None:
        if self.jwt is not None:
            await self.jwt.close()
