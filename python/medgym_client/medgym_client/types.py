"""Wire types of medgym's env server: step results, observations, image views and errors.

The server's JSON (docs/bridges.md, "Actions and observations") maps onto small dataclasses.
Images stay base64 PNG until asked for: :meth:`ImageView.png_bytes` decodes the base64 and
:meth:`ImageView.pixels` decodes the PNG itself (standard library only) so that a client can check
the server's ``sha256`` of the raw pixels.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


class MedGymError(Exception):
    """An error answer of the env server (HTTP 4xx/5xx JSON, or a WebSocket error frame).

    Attributes:
        status: the HTTP status (400, 401, 404, 409, 413, 415, 501, 503, 500); for a WebSocket
            error frame, the status the same mistake gets over HTTP where the code implies one, else 0.
        code: the server's stable code, e.g. ``"NOT_FOUND"`` or ``"EPISODE_DONE"``.
        message: the server's sentence naming the field or problem.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def __reduce__(self):  # keeps the error picklable (multiprocessing workers)
        return (type(self), (self.status, self.code, self.message))


#: HTTP status of each error code, for WebSocket error frames (which carry no status).
CODE_STATUS: Dict[str, int] = {
    "INVALID_JSON": 400,
    "VALIDATION_ERROR": 400,
    "UNKNOWN_TYPE": 400,
    "UNAUTHORIZED": 401,
    "NOT_FOUND": 404,
    "NO_EPISODE": 409,
    "EPISODE_DONE": 409,
    "SESSION_BUSY": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "EXECUTION_ERROR": 500,
    "CAPACITY_REACHED": 503,
}


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode_png(png: bytes) -> "tuple[int, int, int, bytes]":
    """Decodes an 8-bit, non-interlaced grey / grey+alpha / RGB / RGBA PNG (what the server writes).

    Returns:
        ``(width, height, channels, pixels)`` with pixels row-major, channels interleaved.

    Raises:
        ValueError: on a PNG this small decoder does not handle (palette, 16-bit, interlaced).
    """
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, header = 8, [], None
    while pos + 8 <= len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        body = png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError("PNG without IHDR")
    width, height, depth, color, _, _, interlace = header
    channels = {0: 1, 4: 2, 2: 3, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace != 0:
        raise ValueError(f"unsupported PNG (bit depth {depth}, color type {color}, interlace {interlace})")
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    out = bytearray(height * stride)
    prev = bytearray(stride)
    src = 0
    for y in range(height):
        ftype = raw[src]
        line = bytearray(raw[src + 1 : src + 1 + stride])
        src += 1 + stride
        if ftype == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif ftype == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif ftype == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                upleft = prev[i - channels] if i >= channels else 0
                line[i] = (line[i] + _paeth(left, prev[i], upleft)) & 0xFF
        elif ftype != 0:
            raise ValueError(f"bad PNG filter type {ftype} in row {y}")
        out[y * stride : (y + 1) * stride] = line
        prev = line
    return width, height, channels, bytes(out)


@dataclass
class ImageView:
    """One view (MCP image content): a base64 PNG plus its size and the SHA-256 of its raw pixels.

    A view sent by reference (the server's images mode ``"blobs"``) has ``data == ""`` and a ``uri``
    (``/blobs/<sha256>``): ``client.fetch_image(view)`` fills ``data`` in.
    """

    data: str
    w: int
    h: int
    channels: int
    sha256: str
    mime_type: str = "image/png"
    uri: Optional[str] = None

    @classmethod
    def from_wire(cls, d: Dict[str, Any]) -> "ImageView":
        """Builds a view from the server's ``{"type": "image", "data" | "uri", "mimeType", "w", "h", ...}``."""
        return cls(
            data=d.get("data", ""),
            w=int(d["w"]),
            h=int(d["h"]),
            channels=int(d.get("channels", 1)),
            sha256=d.get("sha256", ""),
            mime_type=d.get("mimeType", "image/png"),
            uri=d.get("uri"),
        )

    def png_bytes(self) -> bytes:
        """The PNG file (base64-decoded on each call; nothing is kept)."""
        if not self.data:
            raise ValueError(f"this view was sent by reference ({self.uri}): fetch it first with client.fetch_image(view)")
        return base64.b64decode(self.data)

    def pixels(self) -> bytes:
        """Raw pixels (row-major, channels interleaved), decoded with the standard library."""
        w, h, c, px = decode_png(self.png_bytes())
        if (w, h, c) != (self.w, self.h, self.channels):
            raise ValueError(f"PNG is {w}x{h}x{c} but the server said {self.w}x{self.h}x{self.channels}")
        return px

    def verify(self) -> bool:
        """True when the decoded pixels hash to the server's ``sha256``."""
        return hashlib.sha256(self.pixels()).hexdigest() == self.sha256

    def to_pil(self) -> Any:
        """The view as a ``PIL.Image`` (needs Pillow, which this package does not depend on)."""
        import io

        from PIL import Image  # type: ignore[import-not-found]

        return Image.open(io.BytesIO(self.png_bytes()))


@dataclass
class Observation:
    """What the env shows the policy after a reset or step (medgym's ``Observation``)."""

    text: str
    tokens: List[int]
    images: List[ImageView]
    original_size: Optional[Dict[str, int]] = None

    @classmethod
    def from_wire(cls, d: Dict[str, Any]) -> "Observation":
        """Builds an observation from the server's JSON."""
        return cls(
            text=d.get("text", ""),
            tokens=list(d.get("tokens", [])),
            images=[ImageView.from_wire(i) for i in d.get("images", [])],
            original_size=d.get("original_size"),
        )


@dataclass
class StepMetadata:
    """``terminated`` / ``truncated`` and the env's ``StepInfo`` (camelCase keys, as the env has them)."""

    terminated: bool = False
    truncated: bool = False
    info: Dict[str, Any] = field(default_factory=dict)
    request_id: Optional[str] = None


@dataclass
class StepResult:
    """The answer of a reset or step: OpenEnv's ``{observation, reward, done, metadata}``.

    ``reward`` is ``None`` after a reset. ``episode_id`` is set by HTTP resets (the session key).
    """

    observation: Observation
    reward: Optional[float]
    done: bool
    metadata: StepMetadata
    episode_id: Optional[str] = None

    @classmethod
    def from_wire(cls, d: Dict[str, Any]) -> "StepResult":
        """Builds a step result from the server's JSON."""
        m = d.get("metadata") or {}
        return cls(
            observation=Observation.from_wire(d.get("observation") or {}),
            reward=d.get("reward"),
            done=bool(d.get("done", False)),
            metadata=StepMetadata(
                terminated=bool(m.get("terminated", False)),
                truncated=bool(m.get("truncated", False)),
                info=dict(m.get("info") or {}),
                request_id=m.get("request_id"),
            ),
            episode_id=d.get("episode_id"),
        )


@dataclass
class ToolCallResult(StepResult):
    """The answer of ``tools/call`` (MCP's CallToolResult, plus the step it was).

    ``text`` is the tool response without its ``<tool_response>`` wrapper; ``is_error`` is true when
    the env did not run the call (invalid arguments, or the episode ended first). The views are
    ``observation.images``.
    """

    text: str = ""
    is_error: bool = False

    @classmethod
    def from_wire(cls, d: Dict[str, Any]) -> "ToolCallResult":
        """Builds a tool-call result from the server's JSON."""
        step = StepResult.from_wire(d)
        content = d.get("content") or []
        text = next((c.get("text", "") for c in content if c.get("type") == "text"), "")
        return cls(**step.__dict__, text=text, is_error=bool(d.get("isError", False)))


def action_body(text: Optional[str] = None, token_ids: Optional[List[int]] = None, request_id: Optional[str] = None) -> Dict[str, Any]:
    """A step body: exactly one of ``text`` (the assistant turn) or ``token_ids`` (the same turn as medgym token ids)."""
    if (text is None) == (token_ids is None):
        raise ValueError("give exactly one of text or token_ids")
    body: Dict[str, Any] = {"action": {"text": text} if text is not None else {"token_ids": [int(t) for t in token_ids or []]}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def tool_call_body(name: str, arguments: Optional[Dict[str, Any]], request_id: Optional[str]) -> Dict[str, Any]:
    """A ``tools/call`` body (MCP's ``{name, arguments}``)."""
    body: Dict[str, Any] = {"name": name, "arguments": arguments if arguments is not None else {}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def reset_body(seed: Optional[int], env: Optional[str], options: Optional[Dict[str, Any]], episode_id: Optional[str] = None, dataset: Optional[str] = None) -> Dict[str, Any]:
    """A reset request body without the fields left out (the server rejects unknown fields, not nulls)."""
    body: Dict[str, Any] = {}
    if seed is not None:
        body["seed"] = seed
    if env is not None:
        body["env"] = env
    if dataset is not None:
        body["dataset"] = dataset
    if options is not None:
        body["options"] = options
    if episode_id is not None:
        body["episode_id"] = episode_id
    return body
