"""verl adapter: a multi-turn ``AgentLoop`` that plays one medgym episode per sample.

Follows verl's agent loop interface (volcengine/verl, verl/experimental/agent_loop/agent_loop.py):
``AgentLoopBase.__init__(trainer_config, server_manager, tokenizer, processor, **kwargs)`` (newer
verl also passes ``dataset_cls`` and ``dataset_config``; they are forwarded as they come), ``async
run(sampling_params, **kwargs) -> AgentLoopOutput`` with the dataset row as kwargs,
``server_manager.generate(request_id, prompt_ids=..., sampling_params=...)`` returning a
``TokenOutput`` (``token_ids``, ``log_probs``), and ``AgentLoopOutput(prompt_ids, response_ids,
response_mask, response_logprobs, reward_score, num_turns, metrics, extra_fields)``. Loops are
found by name through ``@register(name)`` or an ``agent_loop_config_path`` YAML entry whose keys
(besides ``name`` / ``_target_``) reach ``__init__`` as keyword arguments.

Text in / text out: the env's own prompt text (medgym's template, not the model's chat template) is
tokenized with verl's tokenizer, each generation is decoded and sent as one env step, and the tool
response text is tokenized and appended with mask 0. Medgym's own token ids (``observation.tokens``)
and the image views are not passed to the model yet (``<|image|>`` stays text); the views' count is
in ``extra_fields``. Without verl installed, a minimal stand-in base and output class with the same
names and fields are used, so this module imports and can be driven by a fake trainer.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Union

from ._common import async_client, pick_url, resolve_urls, row_value, seed_of

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

    def _encode(self, text: str) -> List[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _decode(self, ids: List[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    async def run(self, sampling_params: Dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """Plays the sample's episode; ``reward_score`` is the env's reward."""
        seed = seed_of(kwargs, kwargs.get("raw_prompt"))
        index = row_value(kwargs, "medgym_index")
        env_id = row_value(kwargs, "env") if isinstance(row_value(kwargs, "env"), str) else self.medgym_env
        request_id = uuid.uuid4().hex
        metrics = {"generate_sequences": 0.0, "tool_calls": 0.0}
        client = async_client(self.medgym_url, self.medgym_token)
        try:
            r = await client.reset(seed=seed, env=env_id, options={"index": int(index)} if index is not None else None)
            prompt_ids = self._encode(r.observation.text)
            response_ids: List[int] = []
            response_mask: List[int] = []
            logprobs: List[float] = []
            have_logprobs = True
            turns, views = 0, len(r.observation.images)
            while not r.done and turns < self.max_turns and len(response_ids) < self.response_length:
                t0 = time.perf_counter()
                out = await self.server_manager.generate(request_id, prompt_ids=prompt_ids + response_ids, sampling_params=sampling_params)
                metrics["generate_sequences"] += time.perf_counter() - t0
                gen = list(out.token_ids)[: self.response_length - len(response_ids)]
                lp = getattr(out, "log_probs", None)
                have_logprobs = have_logprobs and lp is not None
                response_ids += gen
                response_mask += [1] * len(gen)
                logprobs += list(lp or [])[: len(gen)] + [0.0] * max(0, len(gen) - len(lp or []))
                turns += 1
                text = self._decode(gen)
                t0 = time.perf_counter()
                r = await client.step(text)
                metrics["tool_calls"] += time.perf_counter() - t0
                views += len(r.observation.images)
                if r.done or not r.observation.text:
                    break
                obs = self._encode(r.observation.text)[: self.response_length - len(response_ids)]
                response_ids += obs
                response_mask += [0] * len(obs)
                logprobs += [0.0] * len(obs)
            reward = float(r.reward) if r.done and r.reward is not None else self.unfinished_reward
            info = dict(r.metadata.info)
        finally:
            await client.close()
        return AgentLoopOutput(
            prompt_ids=prompt_ids,
            response_ids=response_ids,
            response_mask=response_mask,
            response_logprobs=logprobs if have_logprobs and logprobs else None,
            reward_score=reward,
            num_turns=2 * turns + 1,  # verl counts user, assistant and tool messages
            metrics=AgentLoopMetrics(**metrics),
            extra_fields={
                "medgym_done": bool(r.done),
                "medgym_answer": (info.get("answer") or {}).get("raw") if isinstance(info.get("answer"), dict) else None,
                "medgym_correct": (info.get("answer") or {}).get("correct") if isinstance(info.get("answer"), dict) else None,
                "medgym_views": views,
            },
        )
