"""SkyRL adapter: a SkyRL-gym ``BaseTextEnv`` that plays one medgym episode.

Follows SkyRL-gym's text env interface (NovaSky-AI/SkyRL, skyrl-gym/skyrl_gym/envs/base_text_env.py
and the generator skyrl/train/generators/skyrl_gym_generator.py): the generator builds
``skyrl_gym.make(env_class, env_config=..., extras=row_env_extras)`` per trajectory (``extras`` has
``max_turns``), calls ``init(prompt) -> (conversation, metadata)``, then ``step(llm_text)`` until
``done``, reading the ``BaseTextEnvStepOutput`` dict (``observations`` (OpenAI messages),
``reward``, ``done``, ``metadata``, ``postprocessed_action``), then ``close()``; ``get_metrics()``
feeds its logs. Register it with :func:`register_skyrl_env` (``skyrl_gym.envs.register(id,
entry_point)``).

Images (``env_config.images: image_url``): SkyRL's VLM path (``generator.vision_language_generator=
true``, skyrl/train/generators/skyrl_vlm_generator.py; docs "Vision-Language RL in SkyRL") takes
images inside the OpenAI messages, as ``{"type": "image_url", "image_url": {"url":
"data:image/png;base64,..."}}`` content parts (examples/train/visgym/utils.py ``make_image_message``),
in ``init``'s conversation and in each step's ``user`` observation; the inference server's chat
renderer turns them into the model's image tokens. With it, the views go in exactly there, in the
env's order (question: views then text; tool responses: text then views). Default ``images: none``:
text only, the views stay ``<|image|>`` placeholders (for SkyRL's text generator). The views' count is
in the metadata either way. Without skyrl_gym installed a stand-in base with the same methods is used.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from ..types import ImageView
from ._common import (
    IMAGE_PLACEHOLDER,
    EpisodeSession,
    image_url_part,
    parse_env_prompt,
    prompt_messages,
    response_blocks,
    row_value,
    seed_of,
    tool_response_text,
)

__all__ = ["HAVE_SKYRL", "BaseTextEnv", "MedGymTextEnv", "register_skyrl_env"]

ConversationType = List[Dict[str, Any]]

try:  # pragma: no cover - skyrl_gym is not installed in medgym's CI
    from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput

    HAVE_SKYRL = True
except Exception:
    HAVE_SKYRL = False
    BaseTextEnvStepOutput = dict  # type: ignore[misc,assignment]

    class BaseTextEnv:  # type: ignore[no-redef]
        """Stand-in for SkyRL-gym's ``BaseTextEnv`` (``init`` / ``step`` / ``close`` / ``get_metrics``)."""

        def __init__(self) -> None:
            self.turns = 0
            self.max_turns = 1

        def init(self, prompt: ConversationType) -> Tuple[ConversationType, Dict[str, Any]]:
            return prompt, {}

        def step(self, action: str) -> Dict[str, Any]:
            raise NotImplementedError

        def close(self) -> None:
            pass

        def get_metrics(self) -> Dict[str, Any]:
            return {}


def _get(config: Any, key: str, default: Any = None) -> Any:
    if config is None:
        return default
    if isinstance(config, dict):
        return config.get(key, default)
    try:
        value = getattr(config, key)
    except Exception:
        return default
    return default if value is None else value


class MedGymTextEnv(BaseTextEnv):
    """One medgym episode per instance, text in / text out.

    Args:
        env_config: SkyRL's ``environment.skyrl_gym.<env_class>`` section (dict or DictConfig):
            ``url`` or ``urls`` (else ``$MEDGYM_URLS`` / ``$MEDGYM_URL``; an instance takes one
            round-robin), ``token``, ``env`` (env id), ``prompt_mode`` (``"env"``: the conversation is
            the env's instructions and question, the dataset prompt is dropped; ``"append"``: the
            env's text is appended to the prompt's last user message), ``unfinished_reward``,
            ``images`` (``"none"``: text only, ``<|image|>`` kept; ``"image_url"``: the views as
            OpenAI ``image_url`` content parts with base64 PNG data URIs, for SkyRL's VLM generator).
        extras: the row's ``env_extras``: ``seed`` (else a CRC32 of the prompt), ``medgym_index``,
            ``env``, and the generator's ``max_turns``.
    """

    def __init__(self, env_config: Any = None, extras: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        extras = dict(extras or {})
        self.extras = extras
        self.max_turns = int(extras.get("max_turns") or _get(env_config, "max_turns", 8))
        self.prompt_mode = str(_get(env_config, "prompt_mode", "env"))
        self.unfinished_reward = float(_get(env_config, "unfinished_reward", 0.0))
        self.images = str(_get(env_config, "images", "none"))
        if self.images not in ("none", "image_url"):
            raise ValueError(f'images must be "none" or "image_url", got {self.images!r}')
        urls = _get(env_config, "urls")
        self.session = EpisodeSession(
            _get(env_config, "url"),
            urls=list(urls) if urls is not None and not isinstance(urls, str) else urls,
            token=_get(env_config, "token"),
            env=_get(env_config, "env"),
        )

    def _views(self, views: List[ImageView]) -> List[Dict[str, Any]]:
        for v in views:
            if not v.data:  # sent by reference (server --images blobs)
                self.session.client.fetch_image(v)
        return [image_url_part(v) for v in views]

    def _env_messages(self, observation: Any) -> ConversationType:
        """The reset's system and user messages; with images, the user content is the views as
        ``image_url`` parts, then the question (:func:`parse_env_prompt`)."""
        if self.images == "none":
            return prompt_messages(observation)
        parts = self._views(observation.images)
        try:
            system, question, _ = parse_env_prompt(observation.text)
        except ValueError:
            system, question = "", tool_response_text(observation).replace(IMAGE_PLACEHOLDER, "")
        messages: ConversationType = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": parts + [{"type": "text", "text": question}]})
        return messages

    def init(self, prompt: ConversationType) -> Tuple[ConversationType, Dict[str, Any]]:
        """Resets the env; returns the conversation to generate from and ``{"seed", "url", "views"}``."""
        seed = seed_of(self.extras, prompt)
        env = row_value(self.extras, "env")
        r = self.session.reset(seed=seed, env=env if isinstance(env, str) else None, index=row_value(self.extras, "medgym_index"))
        self.turns = 0
        messages = self._env_messages(r.observation)
        if self.prompt_mode == "append" and prompt:
            conversation = [dict(m) for m in prompt]
            last_user = max((k for k, m in enumerate(conversation) if m.get("role") == "user"), default=None)
            if self.images == "none":
                env_text = "\n".join(m["content"] for m in messages)
                if last_user is None:
                    conversation.append({"role": "user", "content": env_text})
                else:
                    conversation[last_user]["content"] = f'{conversation[last_user]["content"]}\n{env_text}'
            else:
                parts: List[Dict[str, Any]] = []
                for m in messages:
                    parts += [{"type": "text", "text": m["content"]}] if isinstance(m["content"], str) else list(m["content"])
                if last_user is None:
                    conversation.append({"role": "user", "content": parts})
                else:
                    prev = conversation[last_user]["content"]
                    prev_parts = [{"type": "text", "text": prev}] if isinstance(prev, str) else list(prev or [])
                    conversation[last_user]["content"] = prev_parts + parts
        else:
            conversation = messages
        return conversation, {"seed": seed, "url": self.session.url, "views": len(r.observation.images)}

    def _observation(self, observation: Any) -> Dict[str, Any]:
        """The step's user message: the tool response text, or (images) its blocks' text and views."""
        if self.images == "none":
            return {"role": "user", "content": tool_response_text(observation)}
        parts: List[Dict[str, Any]] = []
        views = self._views(observation.images)
        for k, block in enumerate(response_blocks(observation)):
            parts.append({"type": "text", "text": ("\n" if k else "") + block.text})
            parts += views[: block.images]
            views = views[block.images :]
        return {"role": "user", "content": parts}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        """Sends the LLM's turn as one env step. The reward is the env's (0 until the end)."""
        self.turns += 1
        r = self.session.act(action)
        done = bool(r.done)
        metadata: Dict[str, Any] = {"info": dict(r.metadata.info), "views": len(r.observation.images)}
        if not done and self.turns >= self.max_turns:
            done, metadata["unfinished"] = True, True
        reward = float(r.reward) if r.done and r.reward is not None else (self.unfinished_reward if done else 0.0)
        observations = [] if done else [self._observation(r.observation)]
        return BaseTextEnvStepOutput(observations=observations, reward=reward, done=done, metadata=metadata, postprocessed_action=None)

    def get_metrics(self) -> Dict[str, Any]:
        info = self.session.info
        summary = info.get("summary") if isinstance(info.get("summary"), dict) else {}
        return {
            "correct": float(bool(summary.get("correct"))) if summary else 0.0,
            "tool_calls": float(summary.get("toolCalls", len(info.get("toolCalls") or []))),
            "turns": float(self.turns),
        }

    def close(self) -> None:
        self.session.close()


def register_skyrl_env(env_id: str = "medgym") -> None:
    """Registers :class:`MedGymTextEnv` with skyrl_gym under ``env_id`` (needs skyrl_gym)."""
    from skyrl_gym.envs import register

    register(id=env_id, entry_point="medgym_client.adapters.skyrl:MedGymTextEnv")
