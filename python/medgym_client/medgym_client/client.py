"""HTTP client of medgym's env server (``medgym serve-env``), blocking and asyncio.

One :class:`MedGymClient` holds one session: :meth:`MedGymClient.reset` creates it (or starts the
next episode in it) and keeps the ``episode_id`` the server returns; ``step``, ``state`` and
``close`` send it back. Use one client per concurrent episode.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any, Dict, List, Optional

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from .types import ImageView, MedGymError, StepResult, ToolCallResult, action_body, reset_body, tool_call_body

__all__ = ["MedGymClient", "AsyncMedGymClient"]


def _is_connect_failure(err: requests.exceptions.RequestException) -> bool:
    """True when the request certainly never reached the server (safe to resend even a step)."""
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return True
    if not isinstance(err, requests.exceptions.ConnectionError):
        return False
    # requests wraps urllib3's MaxRetryError, whose reason says whether the connection was made.
    reason = err.args[0] if err.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _raise_for_error(resp: requests.Response) -> None:
    """Turns a non-2xx answer into :class:`MedGymError` with the server's code and message."""
    if resp.status_code < 400:
        return
    code, message = "HTTP_ERROR", resp.text[:500]
    try:
        err = resp.json().get("error")
        if isinstance(err, dict):
            code = str(err.get("code", code))
            message = str(err.get("message", message))
    except ValueError:
        pass  # not JSON (a proxy's HTML page): keep the text
    raise MedGymError(resp.status_code, code, message)


class MedGymClient:
    """Blocking HTTP client of one env session.

    Args:
        base_url: the server, e.g. ``"http://127.0.0.1:8000"``.
        token: bearer token (the server's ``--token`` / ``$MEDGYM_TOKEN``); ``None`` for none.
        timeout: seconds per request.
        retries: extra tries, with exponential backoff, after a connection error or a 503
            (``CAPACITY_REACHED``). A 4xx is never retried. ``step`` is resent only when the
            connection was never made, so that an action is not applied twice.
        backoff: seconds before the first retry; doubled on each.

    Example::

        with MedGymClient("http://127.0.0.1:8000") as env:
            r = env.reset(seed=7)
            while not r.done:
                r = env.step(policy(r.observation))
    """

    def __init__(self, base_url: str, token: Optional[str] = None, timeout: float = 30.0, retries: int = 2, backoff: float = 0.25) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.episode_id: Optional[str] = None
        self._http = requests.Session()
        self._http.headers["Accept"] = "application/json"
        if token:
            self._http.headers["Authorization"] = f"Bearer {token}"

    # ---- transport ------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, json: Optional[Dict[str, Any]] = None, params: Optional[Dict[str, Any]] = None, idempotent: bool = True, raw: bool = False) -> Any:
        """One request with retries; returns the parsed JSON answer (the body's bytes with ``raw``) or raises :class:`MedGymError`."""
        url = self.base_url + path
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = self._http.request(method, url, json=json, params=params, timeout=self.timeout)
            except requests.exceptions.RequestException as err:
                retryable = isinstance(err, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)) and (idempotent or _is_connect_failure(err))
                if last or not retryable:
                    raise
                time.sleep(self.backoff * (2**attempt))
                continue
            if resp.status_code == 503 and not last:
                time.sleep(self.backoff * (2**attempt))
                continue
            _raise_for_error(resp)
            return resp.content if raw else resp.json()
        raise AssertionError("unreachable")

    def _require_episode(self) -> str:
        if self.episode_id is None:
            raise MedGymError(409, "NO_EPISODE", "no episode_id yet: call reset() first")
        return self.episode_id

    # ---- env ------------------------------------------------------------------------------

    def reset(self, seed: Optional[int] = None, env: Optional[str] = None, options: Optional[Dict[str, Any]] = None, dataset: Optional[str] = None) -> StepResult:
        """Starts an episode: the first reset creates the session, later ones reuse it.

        Args:
            seed: restarts the episode stream at this seed; without it the stream continues.
            env: env id (``metadata()["envs"]``); ``None`` keeps the session's (or the server default).
            options: e.g. ``{"index": 3}`` (item index in the task source) or ``{"images": "blobs"}``
                (views by reference: see :meth:`fetch_image`).
            dataset: a dataset the server declares (``metadata()["datasets"]``).
        """
        body = reset_body(seed, env, options, self.episode_id, dataset)
        # A reset of a known session is safe to resend; creating one is not (it would leak a slot).
        d = self._request("POST", "/reset", json=body, idempotent=self.episode_id is not None)
        self.episode_id = d.get("episode_id", self.episode_id)
        return StepResult.from_wire(d)

    def step(self, text: str, request_id: Optional[str] = None) -> StepResult:
        """Sends one assistant turn (``<tool_call>{...}</tool_call>`` or ``<answer>X</answer>``)."""
        body = {**action_body(text=text, request_id=request_id), "episode_id": self._require_episode()}
        return StepResult.from_wire(self._request("POST", "/step", json=body, idempotent=False))

    def step_tokens(self, token_ids: List[int], request_id: Optional[str] = None) -> StepResult:
        """Sends one assistant turn as the policy's sampled ids (medgym's tokenizer; token in, token out)."""
        body = {**action_body(token_ids=token_ids, request_id=request_id), "episode_id": self._require_episode()}
        return StepResult.from_wire(self._request("POST", "/step", json=body, idempotent=False))

    def call_tool(self, name: str, arguments: Optional[Dict[str, Any]] = None, request_id: Optional[str] = None) -> ToolCallResult:
        """MCP ``tools/call``: exactly the step ``<tool_call>{"name": name, "arguments": arguments}</tool_call>``."""
        body = {**tool_call_body(name, arguments, request_id), "episode_id": self._require_episode()}
        return ToolCallResult.from_wire(self._request("POST", "/tools/call", json=body, idempotent=False))

    def blob(self, sha256: str) -> bytes:
        """The PNG of a view the server sent lately (``GET /blobs/<sha256>``)."""
        return self._request("GET", f"/blobs/{sha256}", raw=True)

    def fetch_image(self, view: ImageView) -> ImageView:
        """Fills in ``view.data`` of a view sent by reference (no request when it is already inline); returns it."""
        if not view.data:
            view.data = base64.b64encode(self.blob(view.sha256)).decode("ascii")
        return view

    def state(self) -> Dict[str, Any]:
        """``{episode_id, env, step_count, done, episodes}`` of this session."""
        return self._request("GET", "/state", params={"episode_id": self._require_episode()})

    def close(self) -> None:
        """Closes the server's session (if any) and the connection pool. Safe to call twice."""
        try:
            if self.episode_id is not None:
                try:
                    self._request("POST", "/close", json={"episode_id": self.episode_id})
                except MedGymError as err:
                    if err.code != "NOT_FOUND":  # already evicted or closed: nothing to do
                        raise
                finally:
                    self.episode_id = None
        finally:
            self._http.close()

    # ---- server ---------------------------------------------------------------------------

    def health(self) -> Dict[str, Any]:
        """``{"status": "healthy"}`` (needs no token)."""
        return self._request("GET", "/health")

    def metadata(self) -> Dict[str, Any]:
        """Server name, version, default env, registered envs, tools and session counts."""
        return self._request("GET", "/metadata")

    def schema(self) -> Dict[str, Any]:
        """JSON Schemas ``{action, observation, state}``."""
        return self._request("GET", "/schema")

    def tools(self) -> List[Dict[str, Any]]:
        """The env's tools, MCP style: ``[{name, description, inputSchema}]`` (``GET /tools/list``)."""
        return list(self._request("GET", "/tools/list")["tools"])

    def __enter__(self) -> "MedGymClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MedGymClient({self.base_url!r}, episode_id={self.episode_id!r})"


class AsyncMedGymClient:
    """asyncio variant of :class:`MedGymClient`: the same calls, awaited.

    Each call runs the blocking client in a worker thread (``asyncio.to_thread``), so many
    clients (one per episode) step concurrently on one event loop. Calls on one client must not
    overlap (the server answers an overlapping step with 409 ``SESSION_BUSY``).

    Example::

        async with AsyncMedGymClient("http://127.0.0.1:8000") as env:
            r = await env.reset(seed=7)
            r = await env.step("<answer>B</answer>")
    """

    def __init__(self, base_url: str, token: Optional[str] = None, timeout: float = 30.0, retries: int = 2, backoff: float = 0.25) -> None:
        self._sync = MedGymClient(base_url, token=token, timeout=timeout, retries=retries, backoff=backoff)

    @property
    def episode_id(self) -> Optional[str]:
        """The session key of the last reset."""
        return self._sync.episode_id

    async def reset(self, seed: Optional[int] = None, env: Optional[str] = None, options: Optional[Dict[str, Any]] = None, dataset: Optional[str] = None) -> StepResult:
        """See :meth:`MedGymClient.reset`."""
        return await asyncio.to_thread(self._sync.reset, seed, env, options, dataset)

    async def step(self, text: str, request_id: Optional[str] = None) -> StepResult:
        """See :meth:`MedGymClient.step`."""
        return await asyncio.to_thread(self._sync.step, text, request_id)

    async def step_tokens(self, token_ids: List[int], request_id: Optional[str] = None) -> StepResult:
        """See :meth:`MedGymClient.step_tokens`."""
        return await asyncio.to_thread(self._sync.step_tokens, token_ids, request_id)

    async def call_tool(self, name: str, arguments: Optional[Dict[str, Any]] = None, request_id: Optional[str] = None) -> ToolCallResult:
        """See :meth:`MedGymClient.call_tool`."""
        return await asyncio.to_thread(self._sync.call_tool, name, arguments, request_id)

    async def fetch_image(self, view: ImageView) -> ImageView:
        """See :meth:`MedGymClient.fetch_image`."""
        return await asyncio.to_thread(self._sync.fetch_image, view)

    async def state(self) -> Dict[str, Any]:
        """See :meth:`MedGymClient.state`."""
        return await asyncio.to_thread(self._sync.state)

    async def close(self) -> None:
        """See :meth:`MedGymClient.close`."""
        await asyncio.to_thread(self._sync.close)

    async def health(self) -> Dict[str, Any]:
        """See :meth:`MedGymClient.health`."""
        return await asyncio.to_thread(self._sync.health)

    async def metadata(self) -> Dict[str, Any]:
        """See :meth:`MedGymClient.metadata`."""
        return await asyncio.to_thread(self._sync.metadata)

    async def tools(self) -> List[Dict[str, Any]]:
        """See :meth:`MedGymClient.tools`."""
        return await asyncio.to_thread(self._sync.tools)

    async def __aenter__(self) -> "AsyncMedGymClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
