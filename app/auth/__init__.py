"""Authentication (JWT, API keys) and namespace authorization by scopes."""

from app.auth.authenticator import Authenticator, AuthFailure, AuthSetupError
from app.auth.principal import ANONYMOUS, Principal
from app.config.auth import AuthConfig

__all__ = ["ANONYMOUS", "AuthConfig", "AuthFailure", "AuthSetupError", "Authenticator", "Principal"]
