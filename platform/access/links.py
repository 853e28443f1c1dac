"""Signed, expiring download links.

A link is a token signed with the site's secret (django.core.signing, salted for this use)
that names the user it was issued to, the licence (or, for the open class, the release),
the format and a random nonce. It expires after MILIAO_DOWNLOAD_LINK_SECONDS (default ten
minutes) and serves one download: the nonce is recorded with the download.
Nothing is stored when a link is issued; the download is what is recorded.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from kernel.errors import ActionError

SALT = "miliao.access.download-link"


class LinkInvalid(ActionError):
    """The token was altered, truncated or not issued by this platform."""

    status = 400


class LinkExpired(ActionError):
    """The link was genuine but is no longer usable (too old, or already used)."""

    status = 410


@dataclass(frozen=True)
class LinkClaims:
    user_id: int
    format: str
    nonce: str
    purpose: str = ""
    licence_id: int | None = None
    release_id: int | None = None


@dataclass(frozen=True)
class Link:
    token: str
    url: str
    expires_at: datetime
    claims: LinkClaims


def lifetime() -> int:
    return settings.MILIAO_DOWNLOAD_LINK_SECONDS


def sign(*, user, fmt: str, licence=None, release=None, purpose: str = "") -> Link:
    claims = LinkClaims(
        user_id=user.pk,
        format=fmt,
        nonce=secrets.token_urlsafe(16),
        purpose=purpose,
        licence_id=licence.pk if licence is not None else None,
        release_id=release.pk if release is not None else None,
    )
    body = {"u": claims.user_id, "f": claims.format, "n": claims.nonce}
    if claims.licence_id is not None:
        body.update(l=claims.licence_id, p=claims.purpose)
    else:
        body["r"] = claims.release_id
    token = signing.dumps(body, salt=SALT, compress=False)
    return Link(
        token=token,
        url=reverse("api-download", kwargs={"token": token}),
        expires_at=timezone.now() + timedelta(seconds=lifetime()),
        claims=claims,
    )


def read(token: str) -> LinkClaims:
    """The claims of a genuine, unexpired link; LinkInvalid or LinkExpired otherwise."""
    try:
        body = signing.loads(token, salt=SALT, max_age=lifetime())
    except signing.SignatureExpired as exc:
        raise LinkExpired(
            _("this download link has expired (links last %(value)s minutes); ask for a new one")
            % {"value": lifetime() // 60}
        ) from exc
    except signing.BadSignature as exc:
        raise LinkInvalid(
            _("this download link is not valid: it was altered or not issued by this platform")
        ) from exc
    try:
        return LinkClaims(
            user_id=int(body["u"]),
            format=str(body["f"]),
            nonce=str(body["n"]),
            purpose=str(body.get("p", "")),
            licence_id=int(body["l"]) if "l" in body else None,
            release_id=int(body["r"]) if "r" in body else None,
        )
    except (KeyError, TypeError, ValueError) as exc:  # signed by us, yet not a link: another salt's misuse
        raise LinkInvalid(
            _("this download link is not valid: it was altered or not issued by this platform")
        ) from exc
