"""Who is calling: bearer tokens and what they grant.

CAMARA APIs are called with OAuth2 access tokens. A *two-legged* token (client credentials) authorises the API
consumer but names nobody, so the request body must name the subject (``phoneNumber`` or ``device``). A
*three-legged* token was obtained with the end user's device in the loop; it names the subject, and the body must
not. Number Verification goes further: only a token obtained by *network-based* authentication (the device
talking over the carrier's mobile data network) may be used.

The emulator does not run an authorisation server. A :class:`Grant` is what a token stands for; grants come from
two places, looked up in this order:

1. the ``tokens`` mapping handed to the application (configured by the scenario or a test): two-legged grants
   (``subject=None``) and three-legged grants, optionally marked as *not* via the mobile network;
2. device tokens bound in :class:`~carrier_sim.camara.registry.SubscriberRecords`, issued by the emulator's
   helper endpoint, always three-legged and via the mobile network. They expire (the request's ``now`` against
   the token's ``expires_at``) and Number Verification consumes them (single use, NumberVerification 2.x).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from carrier_sim.camara.errors import PermissionDenied, Unauthenticated
from carrier_sim.camara.registry import SubscriberRecords

__all__ = ["Grant", "bearer_token", "resolve_grant"]


@dataclass(frozen=True, slots=True)
class Grant:
    """What an access token authorises.

    ``subject``: the MSISDN the token was issued for (three-legged), or None (two-legged).
    ``scopes``: the scopes granted, or None for every scope.
    ``via_mobile_network``: whether the subject was authenticated by the network (Number Verification needs it).
    ``device_token``: the device token the grant came from, so a single-use operation can consume it (None for
    configured tokens, which the scenario or test owns).
    """

    subject: str | None = None
    scopes: frozenset[str] | None = None
    via_mobile_network: bool = True
    device_token: str | None = None

    @property
    def three_legged(self) -> bool:
        """Whether the token identifies the subject itself."""
        return self.subject is not None

    def require(self, *accepted: str) -> None:
        """Raise :class:`PermissionDenied` unless one of the ``accepted`` scopes is granted.

        An operation may accept several: SIM Swap takes its per-operation scope or the API-name scope
        ``sim-swap`` (SimSwap 1.0.0 PR #103, kept in 2.x), as alternative OpenAPI security requirements.
        """
        if self.scopes is not None and self.scopes.isdisjoint(accepted):
            raise PermissionDenied(f"The access token lacks the scope {' or '.join(map(repr, accepted))}.",
                                   scopes=accepted)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750 §2.1); anything else is 401.

    No header, another scheme or an empty Bearer credential is a request without a token (a bare challenge); a
    Bearer credential with a space in it is a malformed token, refused as ``invalid_token`` (RFC 6750 §3.1).
    """
    if authorization is None:
        raise Unauthenticated("Request not authenticated: no Authorization header.", token_presented=False)
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("Request not authenticated: expected 'Authorization: Bearer <token>'.",
                              token_presented=False)
    if " " in token:
        raise Unauthenticated("Request not authenticated: expected 'Authorization: Bearer <token>'.")
    return token


def resolve_grant(
    authorization: str | None, tokens: Mapping[str, Grant], records: SubscriberRecords, now: datetime
) -> Grant:
    """The grant behind an ``Authorization`` header at ``now``; 401 if the token is unknown, revoked or expired."""
    token = bearer_token(authorization)
    configured = tokens.get(token)
    if configured is not None:
        return configured
    bound = records.token(token)
    if bound is not None and bound.expired(now):
        # Forget it: an expired token never comes back to life, and the records should not grow with them.
        records.revoke_token(token)
    elif bound is not None:
        return Grant(subject=bound.msisdn, scopes=bound.scopes, via_mobile_network=True, device_token=token)
    raise Unauthenticated("Request not authenticated due to missing, invalid, or expired credentials.")
