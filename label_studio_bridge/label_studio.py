"""The few calls the bridge makes to Label Studio: fetch a task's image, list a task's
annotations.

Tokens: a legacy API token is sent as ``Authorization: Token <key>``; a personal access token
(a JWT refresh token, three dot-separated parts) is exchanged at ``/api/token/refresh/`` for
a short-lived access token sent as ``Bearer``, refreshed once when Label Studio answers 401.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx


class LabelStudioError(RuntimeError):
    """Label Studio could not be reached or refused a call; the message says which."""


def is_personal_access_token(token: str) -> bool:
    return token.count(".") == 2


class LabelStudio:
    """One Label Studio instance at ``url`` with one user's token."""

    def __init__(self, url: str, token: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self._http = httpx.Client(timeout=timeout, follow_redirects=True)
        self._access: str | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def _auth(self, refresh: bool = False) -> dict[str, str]:
        if not is_personal_access_token(self.token):
            return {"Authorization": f"Token {self.token}"}
        with self._lock:
            if self._access is None or refresh:
                answer = self._http.post(
                    f"{self.url}/api/token/refresh/", json={"refresh": self.token}
                )
                if answer.status_code != 200:
                    raise LabelStudioError(
                        f"Label Studio at {self.url} refused the personal access token "
                        f"({answer.status_code}): {answer.text[:200]}"
                    )
                self._access = str(answer.json()["access"])
            return {"Authorization": f"Bearer {self._access}"}

    def _own(self, url: str) -> bool:
        """Whether ``url`` (absolute) is on this Label Studio: only then is the token sent."""
        mine, theirs = urlsplit(self.url), urlsplit(url)
        return (mine.scheme, mine.netloc) == (theirs.scheme, theirs.netloc)

    def get(self, path_or_url: str, **kwargs: Any) -> httpx.Response:
        """GET a path of this Label Studio (or an absolute URL; the token goes only to this
        Label Studio), refreshing a personal access token once on 401."""
        url = urljoin(self.url + "/", path_or_url)
        own = self._own(url)
        try:
            answer = self._http.get(url, headers=self._auth() if own else {}, **kwargs)
            if answer.status_code == 401 and own and is_personal_access_token(self.token):
                answer = self._http.get(url, headers=self._auth(refresh=True), **kwargs)
        except httpx.HTTPError as exc:
            raise LabelStudioError(f"GET {url}: {exc!r}") from exc
        if answer.status_code != 200:
            raise LabelStudioError(f"GET {url}: {answer.status_code} {answer.text[:200]}")
        return answer

    def fetch_image(self, reference: str) -> bytes:
        """The bytes a task's image field points at: an upload (``/data/upload/...``), a
        served local file (``/data/local-files/?d=...``) or an http(s) URL."""
        scheme = urlsplit(reference).scheme
        if scheme not in ("", "http", "https"):
            raise LabelStudioError(
                f"cannot fetch {reference!r}: the bridge reads images Label Studio serves over "
                f"http(s) (uploads, local files, URLs), not {scheme}:// storage links"
            )
        return self.get(reference).content

    def task_annotations(self, task_id: int) -> list[dict[str, Any]]:
        """Every annotation of a task, as Label Studio's ``/api/tasks/{id}/annotations/``."""
        return list(self.get(f"/api/tasks/{task_id}/annotations/").json())
