"""The one way ao's command line sends a request with a token: the remote CLI (``apiclient``), an
agent's ``ao report`` / ``ao pr create`` (``agent_client``) and the relay to a running ao
(``light_commands``).

Decision: redirects are refused, not followed. urllib follows them with every header of the
request, ``Authorization`` included, to whatever scheme, host and port the answer names: a proxy,
a misconfigured ``AO_URL`` or anyone answering there would get the token. ao's API never
redirects an API call, so a redirect means ``AO_URL`` is not the address ao serves (e.g. an
``http://`` address a proxy sends to ``https://``): the error says where it pointed.

Standard library only (``ao version`` and ``ao report`` must not import Django).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any


class RedirectRefused(urllib.error.URLError):
    """The server answered with a redirect; the request was not sent on."""

    def __str__(self) -> str:
        return str(self.reason)


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise RedirectRefused(
            f"{req.full_url} answered {code} with a redirect to {newurl}: not followed, the request "
            "carries a token (set AO_URL to the address ao serves)"
        )


_OPENER = urllib.request.build_opener(_RefuseRedirects)


def open_url(request: urllib.request.Request, *, timeout: float) -> Any:
    """``urllib.request.urlopen`` that refuses redirects (:class:`RedirectRefused`)."""
    return _OPENER.open(request, timeout=timeout)
