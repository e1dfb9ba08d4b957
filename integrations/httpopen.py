"""One urllib opener for requests that carry a credential (a webhook URL, an API key): it follows
no redirect. urllib follows one with every header of the request, Authorization included, to any
scheme, host and port; a 3xx becomes an HTTPError instead (services are configured with their final
URL). urllib, not requests: urllib3 logs every request's URL at DEBUG, and webhook URLs are secrets."""

from __future__ import annotations

import urllib.request
from typing import Any


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


opener = urllib.request.build_opener(_NoRedirects)
