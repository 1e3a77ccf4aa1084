"""WebSocket client of medgym's env server: one env per socket (``GET /ws``, OpenEnv's WS protocol).

Needs ``websocket-client`` (``pip install medgym-client[ws]``); it is imported when a
:class:`MedGymWSClient` is made, so the HTTP client works without it.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit, urlunsplit

from .types import CODE_STATUS, MedGymError, StepResult, ToolCallResult, action_body, reset_body, tool_call_body

__all__ = ["MedGymWSClient", "ws_url_of"]


def ws_url_of(url: str) -> str:
    """``http://h:p`` → ``ws://h:p/ws`` (``https`` → ``wss``); a ``ws://…`` URL with a path is kept."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"expected a ws://, wss://, http:// or https:// URL, got {url!r}")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def _import_websocket() -> Any:
    try:
        import websocket  # type: ignore[import-untyped]
    except ImportError as err:  # pragma: no cover - depends on the machine
        raise ImportError("MedGymWSClient needs websocket-client: pip install 'medgym-client[ws]' (Debian: apt-get install python3-websocket)") from err
    return websocket


class MedGymWSClient:
    """Blocking WebSocket client: one socket, one env, one request at a time.

    Args:
        ws_url: ``ws://127.0.0.1:8000/ws`` (an ``http://host:port`` base URL is turned into it).
        token: bearer token sent on the upgrade; a wrong one raises ``MedGymError(401, "UNAUTHORIZED", …)``.
        timeout: seconds to wait for the connection and for each answer.

    The socket opens on the first call (or :meth:`connect`). Server error frames raise
    :class:`MedGymError` with the server's code; the socket stays usable after them.
    """

    def __init__(self, ws_url: str, token: Optional[str] = None, timeout: float = 30.0) -> None:
        self._websocket = _import_websocket()
        self.url = ws_url_of(ws_url)
        self.token = token
        self.timeout = timeout
        self._ws: Any = None

    def connect(self) -> "MedGymWSClient":
        """Opens the socket (a no-op when open)."""
        if self._ws is not None:
            return self
        header = [f"Authorization: Bearer {self.token}"] if self.token else []
        try:
            self._ws = self._websocket.create_connection(self.url, header=header, timeout=self.timeout)
        except self._websocket.WebSocketBadStatusException as err:
            status = int(getattr(err, "status_code", 0) or 0)
            code = {401: "UNAUTHORIZED", 404: "NOT_FOUND", 503: "CAPACITY_REACHED"}.get(status, "HTTP_ERROR")
            raise MedGymError(status, code, f"WebSocket upgrade refused: {err}") from err
        return self

    def _call(self, message: Dict[str, Any]) -> Dict[str, Any]:
        """Sends one message and returns the ``data`` of its answer, or raises its error frame."""
        self.connect()
        try:
            self._ws.send(json.dumps(message))
            raw = self._ws.recv()
        except self._websocket.WebSocketConnectionClosedException as err:
            self._drop()
            raise MedGymError(0, "CONNECTION_CLOSED", f"the server closed the socket: {err}") from err
        if not raw:  # recv() answers "" once the server has closed the socket
            self._drop()
            raise MedGymError(0, "CONNECTION_CLOSED", "the server closed the socket")
        reply = json.loads(raw)
        if reply.get("type") == "error":
            data = reply.get("data") or {}
            code = str(data.get("code", "ERROR"))
            raise MedGymError(CODE_STATUS.get(code, 0), code, str(data.get("message", "")))
        return reply.get("data") or {}

    def _drop(self) -> None:
        if self._ws is not None:
            try:
                self._ws.close()
            finally:
                self._ws = None

    def reset(self, seed: Optional[int] = None, env: Optional[str] = None, options: Optional[Dict[str, Any]] = None, dataset: Optional[str] = None) -> StepResult:
        """Starts the next episode on this socket's env (see :meth:`MedGymClient.reset`)."""
        return StepResult.from_wire(self._call({"type": "reset", "data": reset_body(seed, env, options, None, dataset)}))

    def step(self, text: str, request_id: Optional[str] = None) -> StepResult:
        """Sends one assistant turn."""
        return StepResult.from_wire(self._call({"type": "step", "data": action_body(text=text, request_id=request_id)}))

    def step_tokens(self, token_ids: List[int], request_id: Optional[str] = None) -> StepResult:
        """Sends one assistant turn as medgym token ids (see :meth:`MedGymClient.step_tokens`)."""
        return StepResult.from_wire(self._call({"type": "step", "data": action_body(token_ids=token_ids, request_id=request_id)}))

    def call_tool(self, name: str, arguments: Optional[Dict[str, Any]] = None, request_id: Optional[str] = None) -> ToolCallResult:
        """MCP ``tools/call`` on this socket's env (see :meth:`MedGymClient.call_tool`)."""
        return ToolCallResult.from_wire(self._call({"type": "tools/call", "data": tool_call_body(name, arguments, request_id)}))

    def state(self) -> Dict[str, Any]:
        """``{episode_id, env, step_count, done, episodes}`` of this socket's session."""
        return self._call({"type": "state"})

    def close(self) -> None:
        """Asks the server to close (its env goes with the socket) and closes. Safe to call twice."""
        if self._ws is None:
            return
        try:
            self._ws.send(json.dumps({"type": "close"}))
        except Exception:  # noqa: BLE001 - already closed by the server: nothing to say
            pass
        self._drop()

    def __enter__(self) -> "MedGymWSClient":
        return self.connect()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MedGymWSClient({self.url!r}, open={self._ws is not None})"
