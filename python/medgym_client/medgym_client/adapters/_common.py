"""Shared pieces of the trainer adapters: server choice, medgym's text format, one episode's session.

medgym's env owns the prompt format (SPEC §3): a reset observation is the whole prompt as text
(``<|bos|>{instructions}\\nuser: {question with <|image|>}\\nassistant: ``), a tool step answers
``\\n<tool_response>...</tool_response>\\nassistant: `` and the episode ends on ``<answer>X</answer>``.
The adapters translate between that and each trainer's shapes; nothing here imports a trainer.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import re
import threading
import zlib
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Union

from ..client import AsyncMedGymClient, MedGymClient
from ..types import ImageView, Observation, StepResult

__all__ = [
    "IMAGE_PLACEHOLDER",
    "EnvPrompt",
    "EnvToolResponse",
    "EpisodeSession",
    "answer_text",
    "extract_answer",
    "image_url_part",
    "parse_env_prompt",
    "parse_env_response",
    "pick_url",
    "prompt_messages",
    "response_blocks",
    "resolve_urls",
    "seed_of",
    "tool_call_text",
    "tool_response_text",
]

IMAGE_PLACEHOLDER = "<|image|>"
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_TOOL_RESPONSE_RE = re.compile(r"<tool_response>(.*?)</tool_response>", re.DOTALL)
_ROLE_RE = re.compile(r"(?:^|\n)(system|user|assistant): ")

_rr_lock = threading.Lock()
_rr_counter = itertools.count()


def resolve_urls(base_url: Optional[str] = None, urls: Optional[Union[str, Sequence[str]]] = None) -> List[str]:
    """The server URLs to use: ``urls`` (a list or a comma-separated string), else ``base_url``, else
    ``$MEDGYM_URLS`` (comma-separated), else ``$MEDGYM_URL``. Raises ``ValueError`` when none is set."""
    found: List[str] = []
    if urls:
        found = [u.strip() for u in (urls.split(",") if isinstance(urls, str) else urls) if u and u.strip()]
    elif base_url:
        found = [base_url]
    else:
        env_urls = os.environ.get("MEDGYM_URLS") or os.environ.get("MEDGYM_URL") or ""
        found = [u.strip() for u in env_urls.split(",") if u.strip()]
    if not found:
        raise ValueError("no medgym server: pass base_url= or urls=, or set $MEDGYM_URLS / $MEDGYM_URL")
    return found


def pick_url(urls: Sequence[str], key: Optional[int] = None) -> str:
    """One URL of ``urls``: ``urls[key % len(urls)]`` when ``key`` is given (e.g. a Ray worker's rank),
    else round-robin over the calls in this process (thread-safe)."""
    if not urls:
        raise ValueError("empty server list")
    if key is None:
        with _rr_lock:
            key = next(_rr_counter)
    return urls[int(key) % len(urls)]


def tool_call_text(name: str, arguments: Optional[Dict[str, Any]] = None) -> str:
    """The assistant turn that calls one medgym tool: ``<tool_call>{"name": ..., "arguments": ...}</tool_call>``."""
    return "<tool_call>" + json.dumps({"name": name, "arguments": arguments or {}}) + "</tool_call>"


def answer_text(answer: str) -> str:
    """The assistant turn that answers: ``<answer>X</answer>``."""
    return f"<answer>{str(answer).strip()}</answer>"


def extract_answer(text: str) -> Optional[str]:
    """The last ``<answer>...</answer>`` in ``text`` (stripped), or ``None``."""
    found = _ANSWER_RE.findall(text or "")
    return found[-1].strip() if found else None


def tool_response_text(observation: Observation) -> str:
    """The body of the ``<tool_response>`` in a step's observation (``<|image|>`` kept), unescaped;
    the whole text (less the trailing ``assistant: ``) when there is no such tag."""
    text = observation.text or ""
    found = _TOOL_RESPONSE_RE.findall(text)
    body = "\n".join(found) if found else re.sub(r"\n?assistant: $", "", text).strip()
    return html.unescape(body)


def prompt_messages(observation: Observation, with_instructions: bool = True) -> List[Dict[str, str]]:
    """A reset observation's prompt as chat messages ``[{"role", "content"}]`` (text, ``<|image|>`` kept,
    ``&lt;`` unescaped). The env's instruction line becomes a ``system`` message (dropped when
    ``with_instructions`` is false); an unrecognised layout is one ``user`` message."""
    text = (observation.text or "").replace("<|bos|>", "")
    parts = _ROLE_RE.split(text)
    messages: List[Dict[str, str]] = []
    head = parts[0].strip()
    if head and with_instructions:
        messages.append({"role": "system", "content": html.unescape(head)})
    for role, content in zip(parts[1::2], parts[2::2]):
        content = content.strip()
        if role == "assistant" and not content:
            continue  # the trailing generation prompt
        if role == "system" and not with_instructions:
            continue
        messages.append({"role": role, "content": html.unescape(content)})
    if not any(m["role"] == "user" for m in messages):
        return [{"role": "user", "content": html.unescape(text.strip())}]
    return messages


class EnvPrompt(NamedTuple):
    """A reset observation's text split as ``parseEnvPrompt`` (src/models/qwen2_vl/protocol.ts) does."""

    system: str
    question: str
    images: int


class EnvToolResponse(NamedTuple):
    """One ``<tool_response>`` block: its text and how many views follow it (``parseEnvResponse``)."""

    text: str
    images: int


_BOS = "<|bos|>"
_USER = "\nuser: "
_TAIL = "\nassistant: "


def parse_env_prompt(text: str, unescape: bool = True) -> EnvPrompt:
    """The env's prompt (``<|bos|>`` system ``\\nuser: `` ``<|image|>``… question ``\\nassistant: ``) split
    into system text, question and the number of leading ``<|image|>`` (Python twin of protocol.ts's
    ``parseEnvPrompt``; ``unescape`` also turns the env's ``&lt;`` back into ``<``).

    Raises:
        ValueError: the text is not laid out that way.
    """
    body = text[len(_BOS) :] if text.startswith(_BOS) else text
    u = body.find(_USER)
    if u == -1 or not body.endswith(_TAIL):
        raise ValueError('expected an env prompt: system text, "\\nuser: ", the question, "\\nassistant: "')
    q = body[u + len(_USER) : len(body) - len(_TAIL)]
    images = 0
    while q.startswith(IMAGE_PLACEHOLDER):
        images += 1
        q = q[len(IMAGE_PLACEHOLDER) :]
    q = q[1:] if q.startswith("\n") else q
    system = body[:u]
    return EnvPrompt(html.unescape(system), html.unescape(q), images) if unescape else EnvPrompt(system, q, images)


def parse_env_response(text: str, unescape: bool = True) -> List[EnvToolResponse]:
    """The ``<tool_response>`` blocks of a step's text, each with its trailing ``<|image|>`` count
    (protocol.ts's ``parseEnvResponse``); ``[]`` when there is none."""
    out: List[EnvToolResponse] = []
    for body in _TOOL_RESPONSE_RE.findall(text or ""):
        images = 0
        while body.endswith(IMAGE_PLACEHOLDER):
            images += 1
            body = body[: len(body) - len(IMAGE_PLACEHOLDER)]
        out.append(EnvToolResponse(html.unescape(body) if unescape else body, images))
    return out


def response_blocks(observation: Observation) -> List[EnvToolResponse]:
    """:func:`parse_env_response` of a step's observation, made to agree with its views: a text without
    ``<tool_response>`` is one block (:func:`tool_response_text`, placeholders taken out and counted),
    and the image counts are clipped / topped up (on the last block) to ``len(observation.images)``."""
    blocks = parse_env_response(observation.text or "")
    if not blocks:
        body = tool_response_text(observation)
        blocks = [EnvToolResponse(body.replace(IMAGE_PLACEHOLDER, ""), body.count(IMAGE_PLACEHOLDER))]
    left = len(observation.images)
    fixed: List[EnvToolResponse] = []
    for b in blocks:
        n = min(b.images, left)
        left -= n
        fixed.append(EnvToolResponse(b.text, n))
    if left:
        fixed[-1] = EnvToolResponse(fixed[-1].text, fixed[-1].images + left)
    return fixed


def image_url_part(view: ImageView) -> Dict[str, Any]:
    """A view as an OpenAI ``image_url`` content part with a base64 data URI (inline views only)."""
    if not view.data:
        raise ValueError(f"this view was sent by reference ({view.uri}): fetch it first with client.fetch_image(view)")
    return {"type": "image_url", "image_url": {"url": f"data:{view.mime_type or 'image/png'};base64,{view.data}"}}


def seed_of(row: Dict[str, Any], fallback_text: Any = None) -> Optional[int]:
    """The episode seed of a dataset row: its ``seed`` (top level or under ``extra_info`` /
    ``env_extras``), else a stable CRC32 of ``fallback_text`` (so that all the rollouts of one GRPO
    group see the same item), else ``None``."""
    for where in (row, row.get("extra_info") or {}, row.get("env_extras") or {}):
        if isinstance(where, dict) and where.get("seed") is not None:
            return int(where["seed"])
    if fallback_text is None:
        return None
    blob = fallback_text if isinstance(fallback_text, str) else json.dumps(fallback_text, sort_keys=True, default=str)
    return zlib.crc32(blob.encode("utf-8")) & 0x7FFFFFFF


def row_value(row: Dict[str, Any], key: str) -> Any:
    """``row[key]``, or the same key under ``extra_info`` / ``env_extras``; ``None`` when absent."""
    for where in (row, row.get("extra_info") or {}, row.get("env_extras") or {}):
        if isinstance(where, dict) and where.get(key) is not None:
            return where[key]
    return None


def images_as(images: List[ImageView], kind: str) -> List[Any]:
    """Views as ``"pil"`` (Pillow images), ``"rgb"`` (Pillow images converted to RGB, as verl's
    ``process_image`` hands its VLMs), ``"png"`` (bytes) or ``"view"`` (:class:`ImageView`)."""
    if kind == "pil":
        return [im.to_pil() for im in images]
    if kind == "rgb":
        return [im.to_pil().convert("RGB") for im in images]
    if kind == "png":
        return [im.png_bytes() for im in images]
    return list(images)


def have_pillow() -> bool:
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


class EpisodeSession:
    """One env session driven turn by turn (blocking): keeps the last result, the reward and done.

    Args:
        base_url / urls / token / url_key: the server (see :func:`resolve_urls`, :func:`pick_url`).
        env: env id for resets (``None``: the server default).
        timeout / retries: as :class:`MedGymClient`.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        *,
        urls: Optional[Union[str, Sequence[str]]] = None,
        token: Optional[str] = None,
        env: Optional[str] = None,
        url_key: Optional[int] = None,
        timeout: float = 30.0,
        retries: int = 2,
    ) -> None:
        self.url = pick_url(resolve_urls(base_url, urls), url_key)
        self.env_id = env
        self.client = MedGymClient(self.url, token=token or os.environ.get("MEDGYM_TOKEN") or None, timeout=timeout, retries=retries)
        self.last: Optional[StepResult] = None
        self.results: List[StepResult] = []

    @property
    def done(self) -> bool:
        return bool(self.last is not None and self.last.done)

    @property
    def reward(self) -> Optional[float]:
        """The env's reward of the finished episode (``None`` while it runs)."""
        return float(self.last.reward) if self.done and self.last is not None and self.last.reward is not None else None

    @property
    def info(self) -> Dict[str, Any]:
        return dict(self.last.metadata.info) if self.last is not None else {}

    def reset(self, seed: Optional[int] = None, env: Optional[str] = None, index: Optional[int] = None) -> StepResult:
        options = {"index": int(index)} if index is not None else None
        self.last = self.client.reset(seed=seed, env=env or self.env_id, options=options)
        self.results = [self.last]
        return self.last

    def act(self, text: str) -> StepResult:
        """One assistant turn as text."""
        self.last = self.client.step(text)
        self.results.append(self.last)
        return self.last

    def call_tool(self, name: str, arguments: Optional[Dict[str, Any]] = None) -> StepResult:
        return self.act(tool_call_text(name, arguments))

    def answer(self, answer: str) -> StepResult:
        return self.act(answer_text(answer))

    def close(self) -> None:
        self.client.close()


def async_client(url: str, token: Optional[str], timeout: float = 30.0, retries: int = 2) -> AsyncMedGymClient:
    return AsyncMedGymClient(url, token=token or os.environ.get("MEDGYM_TOKEN") or None, timeout=timeout, retries=retries)
