"""The `auth:` section of the gateway configuration."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"})
SCOPE_PATTERN = re.compile(r"^mcp:(\*|[A-Za-z0-9][A-Za-z0-9_-]*(:read)?)$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JwtConfig(_Strict):
    """How bearer JWTs are verified. One algorithm family only: mixing HMAC and public-key
    algorithms is what algorithm-confusion attacks exploit."""

    algorithms: Annotated[list[str], Field(min_length=1)] = ["RS256"]
    secret_env: str | None = None
    public_key_file: str | None = None
    jwks_url: str | None = None
    jwks_cache_seconds: Annotated[int, Field(ge=10)] = 300
    #: A token naming an unknown `kid` refreshes the JWKS at most this often (no refresh storms).
    jwks_min_refresh_seconds: Annotated[float, Field(ge=0)] = 10.0
    issuer: str | None = None
    audience: str | None = None
    leeway_seconds: Annotated[int, Field(ge=0, le=300)] = 30
    scope_claim: str = "scope"
    subject_claim: str = "sub"

    @field_validator("algorithms")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [a for a in value if a not in HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS]
        if unknown:
            raise ValueError(f"unsupported or unsafe algorithm(s) {unknown}; use HS256/384/512, RS*, ES* or PS*")
        return value

    @model_validator(mode="after")
    def _one_family(self) -> JwtConfig:
        hmac = set(self.algorithms) & HMAC_ALGORITHMS
        if hmac and len(hmac) != len(self.algorithms):
            raise ValueError("algorithms: do not mix HMAC (HS*) and public-key algorithms")
        if hmac and not self.secret_env:
            raise ValueError("HS* algorithms need 'secret_env', the environment variable holding the secret")
        if not hmac and not (self.public_key_file or self.jwks_url):
            raise ValueError("public-key algorithms need 'public_key_file' or 'jwks_url'")
        if hmac and (self.public_key_file or self.jwks_url):
            raise ValueError("HS* algorithms take a secret, not 'public_key_file'/'jwks_url'")
        return self


class ApiKey(_Strict):
    """A key stored as the SHA-256 of its value, never the value itself."""

    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    subject: Annotated[str, Field(min_length=1)]
    scopes: list[str] = Field(default_factory=lambda: ["mcp:*"])

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not SCOPE_PATTERN.match(s)]
        if bad:
            raise ValueError(f"scopes must look like mcp:*, mcp:<namespace> or mcp:<namespace>:read, not {bad}")
        return value


AuthMode = Literal["none", "jwt", "api_key"]


class AuthConfig(_Strict):
    """`mode` is `none` (loopback only), `jwt`, `api_key`, or a list of `jwt` and `api_key`."""

    mode: AuthMode | list[Literal["jwt", "api_key"]] = "none"
    jwt: JwtConfig | None = None
    api_keys: list[ApiKey] = Field(default_factory=list)

    @property
    def modes(self) -> frozenset[str]:
        return frozenset([self.mode] if isinstance(self.mode, str) else self.mode)

    @model_validator(mode="after")
    def _sections(self) -> AuthConfig:
        if not self.modes:
            raise ValueError("mode: name at least one of jwt, api_key (or none)")
        if "jwt" in self.modes and self.jwt is None:
            raise ValueError("mode includes jwt: add a 'jwt' section")
        if "api_key" in self.modes and not self.api_keys:
            raise ValueError("mode includes api_key: add at least one entry to 'api_keys'")
        return self
