"""verl adapter: a multi-turn ``AgentLoop`` that plays one medgym episode per sample.

Follows verl's agent loop interface (volcengine/verl, verl/experimental/agent_loop/agent_loop.py):
``AgentLoopBase.__init__(trainer_config, server_manager, tokenizer, processor, **kwargs)`` (verl 0.7
also passes ``dataset_cls`` and ``dataset_config``; they are forwarded as they come), ``async
run(sampling_params, **kwargs) -> AgentLoopOutput`` with the dataset row as kwargs,
``server_manager.generate(request_id, prompt_ids=..., sampling_params=..., image_data=...)`` returning
a ``TokenOutput`` (``token_ids``, ``log_probs``), and ``AgentLoopOutput(prompt_ids, response_ids,
response_mask, response_logprobs, multi_modal_data, reward_score, num_turns, metrics,
extra_fields)``. Loops are found by name through ``@register(name)`` or an
``agent_loop_config_path`` YAML entry whose keys (besides ``name`` / ``_target_``) reach ``__init__``
as keyword arguments.

Two paths:

- **With a processor** (a VLM's ``AutoProcessor``, e.g. Qwen2-VL's; verl passes one when the model
  has it) the episode is a chat, tokenized the way verl's ``ToolAgentLoop``
  (verl/experimental/agent_loop/tool_agent_loop.py) and ``AgentLoopBase.apply_chat_template`` do it:
  the env's prompt is split (:func:`parse_env_prompt`, the twin of protocol.ts's ``parseEnvPrompt``)
  into a ``system`` message and a ``user`` message ``[{"type": "image"}…, {"type": "text",
  "text": question}]``; ``prompt_ids`` = ``processor(text=[processor.apply_chat_template(messages,
  add_generation_prompt=True, tokenize=False)], images=views)["input_ids"]`` (image pads expanded by
  the processor). Each turn generates with ``image_data`` = every view so far, keeps the generated ids
  verbatim (mask 1), decodes them (``skip_special_tokens``) as the env's action, and appends the
  step's ``<tool_response>`` blocks as ``tool`` messages (``[{"type": "text"}, {"type": "image"}…]``
  when it has views, else a string) tokenized alone with the turn's new views, the chat template's
  default system prefix cut off (verl's ``remove_system_prompt``), with mask 0. A response that does
  not fit ``response_length`` ends the loop (as verl's: image tokens are never cut). The views come
  back as ``multi_modal_data`` ``{"images": [...], "image": [...]}`` (the same list: verl >= 0.7 reads
  ``"images"``, earlier versions ``"image"``).
- **Without a processor** (text model), or with ``images="none"``: text in / text out as before: the
  env's own prompt text (medgym's template, not the model's chat template) is tokenized with verl's
  tokenizer, each generation decoded and sent as one env step, each tool response text tokenized and
  appended with mask 0; ``<|image|>`` stays text and no view reaches the model.

Medgym's own token ids (``observation.tokens``) are not used. Without verl installed, a minimal
stand-in base and output class with the same names and fields are used, so this module imports and
can be driven by a fake trainer.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

from ..types import ImageView
from ._common import (
    IMAGE_PLACEHOLDER,
    EnvToolResponse,
    async_client,
    have_pillow,
    images_as,
    parse_env_prompt,
    pick_url,
    resolve_urls,
    response_blocks,
    row_value,
    seed_of,
    tool_response_text,
)

__all__ = ["HAVE_VERL", "AgentLoopBase", "AgentLoopMetrics", "AgentLoopOutput", "MedGymAgentLoop", "VERL_AGENT_NAME"]

VERL_AGENT_NAME = "medgym_agent"

try:  # pragma: no cover - verl is not installed in medgym's CI
    from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput, register

    HAVE_VERL = True
except Exception:  # ImportError, or a verl whose imports fail without a GPU stack
    HAVE_VERL = False

    class AgentLoopBase:  # type: ignore[no-redef]
        """Stand-in for verl's ``AgentLoopBase`` (same constructor and ``run`` signature)."""

        def __init__(self, trainer_config: Any, server_manager: Any, tokenizer: Any, processor: Any = None, **kwargs: Any) -> None:
            self.config = getattr(trainer_config, "config", trainer_config)
            self.server_manager = server_manager
            self.tokenizer = tokenizer
            self.processor = processor

        async def run(self, sampling_params: Dict[str, Any], **kwargs: Any) -> "AgentLoopOutput":
            raise NotImplementedError

    @dataclass
    class AgentLoopMetrics:  # type: ignore[no-redef]
        generate_sequences: float = 0.0
        tool_calls: float = 0.0

    @dataclass
    class AgentLoopOutput:  # type: ignore[no-redef]
        prompt_ids: List[int]
        response_ids: List[int]
        response_mask: List[int]
        metrics: AgentLoopMetrics
        response_logprobs: Optional[List[float]] = None
        multi_modal_data: Optional[Dict[str, Any]] = None
        reward_score: Optional[float] = None
        num_turns: int = 0
        extra_fields: Dict[str, Any] = field(default_factory=dict)

    def register(agent_name: str):  # type: ignore[no-redef]
        def decorator(cls: type) -> type:
            return cls

        return decorator


@dataclass
class _Response:
    """A trajectory's response side: ids, loss mask (1 on sampled turns, 0 on the env's) and log-probs
    (0.0 on the env's ids; dropped when a turn came without them)."""

    ids: List[int] = field(default_factory=list)
    mask: List[int] = field(default_factory=list)
    logprobs: List[float] = field(default_factory=list)
    have_logprobs: bool = True

    def sampled(self, gen: List[int], lp: Optional[Sequence[float]]) -> None:
        self.have_logprobs = self.have_logprobs and lp is not None
        self.ids += gen
        self.mask += [1] * len(gen)
        self.logprobs += list(lp or [])[: len(gen)] + [0.0] * max(0, len(gen) - len(lp or []))

    def env(self, ids: List[int]) -> None:
        self.ids += ids
        self.mask += [0] * len(ids)
        self.logprobs += [0.0] * len(ids)


def _cfg_get(config: Any, path: str, default: Any = None) -> Any:
    """``config.a.b.c`` for a DictConfig / dict / object, ``default`` when any part is missing."""
    node = config
    for part in path.split("."):
        if node is None:
            return default
        if isinstance(node, dict):
            node = node.get(part)
        else:
            try:
                node = getattr(node, part)
            except Exception:  # a DictConfig raises for a missing key in struct mode
                return default
    return default if node is None else node


def _as_ids(x: Any) -> List[int]:
    """Token ids from what a tokenizer / processor returns: a list, a ``[[...]]`` batch of one, a
    tensor (``.tolist()``), or a dict / ``BatchEncoding`` with ``input_ids``."""
    if hasattr(x, "keys") and "input_ids" in x:
        x = x["input_ids"]
    if hasattr(x, "tolist"):
        x = x.tolist()
    x = list(x)
    if len(x) == 1 and isinstance(x[0], (list, tuple)):
        x = list(x[0])
    return [int(t) for t in x]


_SYSTEM_PREFIX: Dict[int, List[int]] = {}


def _system_prefix_ids(tokenizer: Any) -> List[int]:
    """The ids a chat template puts before the first message when there is no system message (its
    default system prompt), as verl's ``initialize_system_prompt`` (verl/utils/chat_template.py)
    finds them: one empty user turn minus what a second one adds. Cached per tokenizer."""
    key = id(tokenizer)
    if key not in _SYSTEM_PREFIX:
        one = _as_ids(tokenizer.apply_chat_template([{"role": "user", "content": ""}], add_generation_prompt=False, tokenize=True))
        two = _as_ids(tokenizer.apply_chat_template([{"role": "user", "content": ""}] * 2, add_generation_prompt=False, tokenize=True))
        _SYSTEM_PREFIX[key] = one[: len(one) - (len(two) - len(one))]
    return _SYSTEM_PREFIX[key]


@register(VERL_AGENT_NAME)
class MedGymAgentLoop(AgentLoopBase):
    """One medgym episode per sample: generate → step → tool response → generate … → answer.

    Keyword arguments (from the agent loop YAML entry; the rest go to verl's base):
        base_url / urls: the server(s) (else ``$MEDGYM_URLS`` / ``$MEDGYM_URL``); a loop takes one
            round-robin, or ``urls[worker_key % len(urls)]`` with ``worker_key`` (e.g. the rank).
        token: bearer token (default ``$MEDGYM_TOKEN``). env: env id (``None``: server default).
        max_turns: assistant turns before the loop stops an episode (default 8).
        response_length: token budget of the response (default: verl's
            ``actor_rollout_ref.rollout.response_length``, else 4096).
        unfinished_reward: ``reward_score`` of an episode that did not end.
        images: ``"auto"`` (the chat + image path when verl gives a processor, else text),
            ``"none"`` (always medgym's text, ``<|image|>`` kept as text).
        image_type: what the views are handed to the processor, ``generate`` and ``multi_modal_data``
            as: ``"rgb"`` (PIL images converted to RGB, as verl's ``process_image`` does; the
            default, needs Pillow, which verl has), ``"pil"`` (PIL as decoded: grey views stay
            ``L``), ``"view"`` (medgym's :class:`ImageView`, for tests and custom processors).
        tool_role: role of the tool-response messages (``"tool"``; ``"user"`` for a chat template
            that has no tool role).

    The sample's ``seed`` (or ``extra_info.seed``) picks the item; without one, a CRC32 of
    ``raw_prompt`` does, so all rollouts of one prompt see the same item.
    """

    def __init__(
        self,
        trainer_config: Any,
        server_manager: Any,
        tokenizer: Any,
        processor: Any = None,
        *,
        base_url: Optional[str] = None,
        urls: Optional[Union[str, Sequence[str]]] = None,
        token: Optional[str] = None,
        env: Optional[str] = None,
        worker_key: Optional[int] = None,
        max_turns: int = 8,
        response_length: Optional[int] = None,
        unfinished_reward: float = 0.0,
        images: str = "auto",
        image_type: str = "auto",
        tool_role: str = "tool",
        **kwargs: Any,
    ) -> None:
        kwargs.pop("name", None)  # the YAML entry's own name
        super().__init__(trainer_config, server_manager, tokenizer, processor, **kwargs)
        self.medgym_url = pick_url(resolve_urls(base_url, urls), worker_key)
        self.medgym_token = token
        self.medgym_env = env
        self.max_turns = int(max_turns)
        cfg = getattr(trainer_config, "config", trainer_config)
        self.response_length = int(response_length or _cfg_get(cfg, "actor_rollout_ref.rollout.response_length", 4096))
        self.unfinished_reward = float(unfinished_reward)
        if images not in ("auto", "none"):
            raise ValueError(f'images must be "auto" or "none", got {images!r}')
        if image_type == "auto":
            image_type = "rgb" if have_pillow() else "view"
        if image_type not in ("rgb", "pil", "view"):
            raise ValueError(f'image_type must be "rgb", "pil", "view" or "auto", got {image_type!r}')
        self.medgym_images = images
        self.image_type = image_type
        self.tool_role = str(tool_role)

    @property
    def uses_images(self) -> bool:
        """True when episodes run as chats with the views (a processor is given and images != "none")."""
        return self.processor is not None and self.medgym_images != "none"

    def _encode(self, text: str) -> List[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _decode(self, ids: List[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    async def run(self, sampling_params: Dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """Plays the sample's episode; ``reward_score`` is the env's reward."""
        seed = seed_of(kwargs, kwargs.get("raw_prompt"))
        index = row_value(kwargs, "medgym_index")
        env_id = row_value(kwargs, "env") if isinstance(row_value(kwargs, "env"), str) else self.medgym_env
        client = async_client(self.medgym_url, self.medgym_token)
        try:
            r = await client.reset(seed=seed, env=env_id, options={"index": int(index)} if index is not None else None)
            play = self._play_chat if self.uses_images else self._play_text
            return await play(client, r, sampling_params)
        finally:
            await client.close()

    # ---- text path (no processor) ----------------------------------------------------------------

    async def _play_text(self, client: Any, r: Any, sampling_params: Dict[str, Any]) -> AgentLoopOutput:
        request_id = uuid.uuid4().hex
        metrics = {"generate_sequences": 0.0, "tool_calls": 0.0}
        prompt_ids = self._encode(r.observation.text)
        resp = _Response()
        turns, views = 0, len(r.observation.images)
        while not r.done and turns < self.max_turns and len(resp.ids) < self.response_length:
            gen = await self._generate(request_id, prompt_ids, resp, sampling_params, metrics)
            turns += 1
            r = await self._step(client, gen, metrics)
            views += len(r.observation.images)
            if r.done or not r.observation.text:
                break
            resp.env(self._encode(r.observation.text)[: self.response_length - len(resp.ids)])
        return self._output(r, prompt_ids, resp, turns, metrics, views, None)

    async def _generate(self, request_id: str, prompt_ids: List[int], resp: "_Response", sampling_params: Dict[str, Any], metrics: Dict[str, float], image_data: Optional[List[Any]] = None) -> List[int]:
        """One sampled turn (cut to what is left of response_length), added to ``resp`` with mask 1."""
        t0 = time.perf_counter()
        extra = {"image_data": list(image_data) or None} if image_data is not None else {}
        out = await self.server_manager.generate(request_id, prompt_ids=prompt_ids + resp.ids, sampling_params=sampling_params, **extra)
        metrics["generate_sequences"] += time.perf_counter() - t0
        gen = list(out.token_ids)[: self.response_length - len(resp.ids)]
        resp.sampled(gen, getattr(out, "log_probs", None))
        return gen

    async def _step(self, client: Any, gen: List[int], metrics: Dict[str, float]) -> Any:
        """The turn's decoded text as one env step."""
        t0 = time.perf_counter()
        r = await client.step(self._decode(gen))
        metrics["tool_calls"] += time.perf_counter() - t0
        return r

    # ---- chat + image path (processor) -----------------------------------------------------------

    async def _views(self, client: Any, views: List[ImageView]) -> List[Any]:
        """The step's views (fetched when sent by reference) as ``image_type``."""
        for v in views:
            if not v.data:
                await client.fetch_image(v)
        return images_as(list(views), self.image_type)

    async def _chat_ids(self, messages: List[Dict[str, Any]], images: List[Any], remove_system_prompt: bool) -> List[int]:
        """verl's ``AgentLoopBase.apply_chat_template`` (processor branch): the processor's chat
        template as text, then ``processor(text=[...], images=...)`` for the ids (image pads expanded),
        less the template's default system prefix when ``remove_system_prompt``."""
        template_kwargs = dict(getattr(self, "apply_chat_template_kwargs", None) or {})
        loop = asyncio.get_running_loop()
        raw = await loop.run_in_executor(
            None,
            lambda: self.processor.apply_chat_template(messages, tools=None, add_generation_prompt=True, tokenize=False, **template_kwargs),
        )
        inputs = await loop.run_in_executor(None, lambda: self.processor(text=[raw], images=images or None, return_tensors="pt"))
        ids = _as_ids(inputs["input_ids"])
        if remove_system_prompt:
            ids = ids[len(_system_prefix_ids(self.tokenizer)) :]
        return ids

    def _tool_message(self, block: EnvToolResponse) -> Dict[str, Any]:
        if not block.images:
            return {"role": self.tool_role, "content": block.text}
        content: List[Dict[str, Any]] = [{"type": "text", "text": block.text}]
        content += [{"type": "image"} for _ in range(block.images)]
        return {"role": self.tool_role, "content": content}

    async def _play_chat(self, client: Any, r: Any, sampling_params: Dict[str, Any]) -> AgentLoopOutput:
        request_id = uuid.uuid4().hex
        metrics = {"generate_sequences": 0.0, "tool_calls": 0.0}
        images = await self._views(client, r.observation.images)
        try:
            system, question, _ = parse_env_prompt(r.observation.text)
        except ValueError:  # not medgym's layout: the whole text as the question, views first
            system, question = "", tool_response_text(r.observation).replace(IMAGE_PLACEHOLDER, "")
        # One image part per view (the env writes one <|image|> per view, before the question).
        messages: List[Dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": [{"type": "image"} for _ in images] + [{"type": "text", "text": question}]})
        prompt_ids = await self._chat_ids(messages, images, remove_system_prompt=False)
        image_data: List[Any] = list(images)
        resp = _Response()
        turns, views = 0, len(images)
        while not r.done and turns < self.max_turns and len(resp.ids) < self.response_length:
            gen = await self._generate(request_id, prompt_ids, resp, sampling_params, metrics, image_data)
            turns += 1
            r = await self._step(client, gen, metrics)
            if r.done or not r.observation.text or len(resp.ids) >= self.response_length:
                break
            new_images = await self._views(client, r.observation.images)
            delta = await self._chat_ids([self._tool_message(b) for b in response_blocks(r.observation)], new_images, remove_system_prompt=True)
            # verl: the response never ends on a tool turn cut short (nor an image cut in half).
            if len(resp.ids) + len(delta) >= self.response_length:
                break
            resp.env(delta)
            image_data += new_images
            views += len(new_images)
        return self._output(r, prompt_ids, resp, turns, metrics, views, image_data)

    def _output(
        self,
        r: Any,
        prompt_ids: List[int],
        resp: "_Response",
        turns: int,
        metrics: Dict[str, float],
        views: int,
        image_data: Optional[List[Any]],
    ) -> AgentLoopOutput:
        reward = float(r.reward) if r.done and r.reward is not None else self.unfinished_reward
        info = dict(r.metadata.info)
        answer = info.get("answer") if isinstance(info.get("answer"), dict) else {}
        extra: Dict[str, Any] = {
            "medgym_done": bool(r.done),
            "medgym_answer": answer.get("raw") if answer else None,
            "medgym_correct": answer.get("correct") if answer else None,
            "medgym_views": views,
        }
        out: Dict[str, Any] = dict(
            prompt_ids=prompt_ids,
            response_ids=resp.ids,
            response_mask=resp.mask,
            response_logprobs=(resp.logprobs or None) if resp.have_logprobs else None,
            reward_score=reward,
            num_turns=2 * turns + 1,  # verl counts user, assistant and tool messages
            metrics=AgentLoopMetrics(**metrics),
            extra_fields=extra,
        )
        if image_data is not None:
            # verl >= 0.7 (volcengine/verl#4759) reads "images"; earlier versions read "image".
            out["multi_modal_data"] = {"images": image_data, "image": image_data} if image_data else {}
        return AgentLoopOutput(**out)
