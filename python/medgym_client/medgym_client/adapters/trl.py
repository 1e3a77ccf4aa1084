"""TRL adapter: an ``environment_factory`` class for ``GRPOTrainer``.

Follows TRL's ``GRPOTrainer(environment_factory=...)`` contract (trl/trainer/grpo_trainer.py, the
``environment_factory`` argument and ``_tool_call_loop``; docs/source/openenv.md and
examples/scripts/openenv/carla_vlm.py in huggingface/trl):

- the factory is called with no argument, once per concurrent rollout; instances are pooled and
  ``reset(**row)`` is called before each rollout with the dataset row's columns; a string (or a list
  of content blocks) returned by ``reset`` is appended to the last user message;
- every public method other than ``reset`` / ``get_reward`` is a tool: its name, type hints and
  Google-style docstring become the tool schema (transformers' ``get_json_schema``), and the model's
  parsed tool call runs it as ``method(**arguments)``; a returned list of ``{"type": "image", "image":
  PIL.Image}`` / ``{"type": "text", "text": ...}`` blocks carries images to a VLM;
- an optional ``get_reward()`` (no argument, a float) makes the environment own the reward; else the
  reward function gets ``environments=`` (the per-rollout instances) among its kwargs.

:func:`make_environment_factory` asks the server for its tools (``GET /tools/list``) and builds a
class with one method per tool (``zoom_in(cell=..., bbox=..., ...)``, ``window(center, width)``, ...)
plus ``answer(answer)``; each method sends the matching ``<tool_call>`` (or ``<answer>``) text as one
env step and returns the tool response. :func:`medgym_reward` is the reward function: it ends an
episode the model answered in plain text (``<answer>X</answer>`` in its last message) and returns the
env's reward. Nothing here imports trl.
"""

from __future__ import annotations

import keyword
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from ..client import MedGymClient
from ._common import (
    IMAGE_PLACEHOLDER,
    EpisodeSession,
    extract_answer,
    have_pillow,
    images_as,
    prompt_messages,
    resolve_urls,
    row_value,
    seed_of,
    tool_response_text,
)

__all__ = ["MedGymTRLEnvBase", "make_environment_factory", "medgym_reward"]

_JSON_TO_PY = {"string": "str", "number": "float", "integer": "int", "boolean": "bool", "object": "Dict[str, Any]"}


def _py_type(schema: Dict[str, Any]) -> str:
    """A Python type hint (as source) for a JSON Schema property; ``Any`` when it has no single type."""
    t = schema.get("type")
    if t == "array":
        items = schema.get("items") or {}
        return f"List[{_py_type(items)}]" if items else "List[Any]"
    if t in _JSON_TO_PY:
        return _JSON_TO_PY[t]
    options = schema.get("anyOf") or schema.get("oneOf") or []
    kinds = {o.get("type") for o in options if isinstance(o, dict)}
    if len(kinds) == 1:
        return _py_type({"type": kinds.pop()})
    return "Any"


def _arg_doc(name: str, schema: Dict[str, Any]) -> str:
    desc = " ".join(str(schema.get("description") or "").split()) or f"the {name.replace('_', ' ')}"
    choices = schema.get("enum")
    if choices is None:
        consts = [o["const"] for o in (schema.get("anyOf") or []) if isinstance(o, dict) and "const" in o]
        choices = consts or None
    if choices:
        import json

        desc += f" (choices: {json.dumps(choices)})"  # transformers' get_json_schema turns this into an enum
    return desc


def _tool_method_source(tool: Dict[str, Any], carry_images: bool) -> Optional[str]:
    """Source of one tool method, or ``None`` when the tool's or an argument's name is not a Python name."""
    name = tool.get("name", "")
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") or name in ("reset", "get_reward", "answer"):
        return None
    schema = tool.get("inputSchema") or {}
    props: Dict[str, Any] = schema.get("properties") or {}
    required = [p for p in schema.get("required") or [] if p in props]
    optional = [p for p in props if p not in required]
    if any(not p.isidentifier() or keyword.iskeyword(p) or p == "self" for p in props):
        return None
    params = ["self"]
    params += [f"{p}: {_py_type(props[p])}" for p in required]
    params += [f"{p}: Optional[{_py_type(props[p])}] = None" for p in optional]
    ret = "list" if carry_images else "str"
    doc = [" ".join(str(tool.get("description") or name).split()), ""]
    if props:
        doc.append("Args:")
        doc += [f"    {p}: {_arg_doc(p, props[p])}" for p in required + optional]
        doc.append("")
    doc += ["Returns:", "    The tool response: text, and the resulting image views." if carry_images else "    The tool response text."]
    body = "\n".join("        " + line if line else "" for line in doc)
    args = ", ".join(f"{p!r}: {p}" for p in required + optional)
    return (
        f"def {name}({', '.join(params)}) -> {ret}:\n"
        f'    """\n{body}\n    """\n'
        f"    return self._tool({name!r}, {{{args}}})\n"
    )


def _answer_method(carry_images: bool) -> Callable[..., Any]:
    def answer(self: "MedGymTRLEnvBase", answer: str) -> str:
        """
        Give the final answer and end the episode.

        Args:
            answer: the letter of the chosen option, e.g. "B"

        Returns:
            Whether the answer was received.
        """
        return self._answer(answer)

    return answer


class MedGymTRLEnvBase:
    """Base of the classes :func:`make_environment_factory` builds; holds one env session.

    Class attributes (set by the factory): ``_urls``, ``_token``, ``_env_id``, ``_images`` (``"pil"`` or
    ``"none"``), ``_with_instructions``, ``_unfinished_reward``. Only ``reset``, the tool methods and
    (with ``owns_reward``) ``get_reward`` are public: TRL turns every other public method into a tool.
    """

    _urls: List[str] = []
    _token: Optional[str] = None
    _env_id: Optional[str] = None
    _images: str = "none"
    _with_instructions: bool = True
    _unfinished_reward: float = 0.0
    _timeout: float = 30.0

    def __init__(self) -> None:
        self._session = EpisodeSession(urls=self._urls, token=self._token, env=self._env_id, timeout=self._timeout)
        # TRL pools instances without closing them: close the server session when this one goes.
        self._finalizer = weakref.finalize(self, EpisodeSession.close, self._session)

    # ---- TRL's contract ------------------------------------------------------------------------

    def reset(self, **kwargs: Any) -> Union[str, List[Dict[str, Any]]]:
        """Starts the episode of a dataset row; returns the env's question (and image) for the prompt.

        Reads the row's ``seed`` (else a CRC32 of its ``prompt``, so that one GRPO group shares an
        item), ``medgym_index`` (item index) and ``env`` (env id) columns, top level or under
        ``extra_info``.
        """
        seed = seed_of(kwargs, kwargs.get("prompt"))
        index = row_value(kwargs, "medgym_index")
        env = row_value(kwargs, "env") if isinstance(row_value(kwargs, "env"), str) else None
        r = self._session.reset(seed=seed, env=env, index=index)
        messages = prompt_messages(r.observation, with_instructions=self._with_instructions)
        text = "\n".join(m["content"] for m in messages if m["role"] in ("system", "user"))
        return self._render(text, r.observation.images)

    # ---- helpers (private: not tools) ----------------------------------------------------------

    def _render(self, text: str, images: Sequence[Any]) -> Union[str, List[Dict[str, Any]]]:
        """Text with ``<|image|>`` placeholders → a str, or (``images="pil"``) always a list of content
        blocks, the views as PIL images in place of the placeholders."""
        if self._images != "pil":
            return text
        pil = images_as(list(images), "pil")
        blocks: List[Dict[str, Any]] = []
        chunks = text.split(IMAGE_PLACEHOLDER)
        for k, chunk in enumerate(chunks):
            if chunk:
                blocks.append({"type": "text", "text": chunk})
            if k < len(chunks) - 1 and k < len(pil):
                blocks.append({"type": "image", "image": pil[k]})
        blocks += [{"type": "image", "image": im} for im in pil[len(chunks) - 1 :]]
        return blocks

    def _tool(self, name: str, arguments: Dict[str, Any]) -> Union[str, List[Dict[str, Any]]]:
        if self._session.last is None:
            return self._render("error: no episode (reset first)", [])
        if self._session.done:
            return self._render("error: the episode is over", [])
        args = {k: v for k, v in arguments.items() if v is not None}
        r = self._session.call_tool(name, args)
        text = tool_response_text(r.observation) if not r.done else "the episode ended"
        return self._render(text, r.observation.images)

    def _answer(self, answer: str) -> str:
        if self._session.last is None:
            return "error: no episode (reset first)"
        if self._session.done:
            return "error: the episode is over"
        r = self._session.answer(answer)
        return "answer received" if r.done else tool_response_text(r.observation)

    def _finish(self, completion: Any = None) -> float:
        """Ends the episode from the model's last message when it answered in text; the env's reward
        (``_unfinished_reward`` when the episode did not end)."""
        s = self._session
        if s.last is not None and not s.done and completion is not None:
            answer = extract_answer(_last_assistant_text(completion))
            if answer is not None:
                s.answer(answer)
        reward = s.reward
        return float(self._unfinished_reward if reward is None else reward)

    @property
    def _info(self) -> Dict[str, Any]:
        return self._session.info

    def _close(self) -> None:
        self._finalizer()


def _last_assistant_text(completion: Any) -> str:
    """The text of the last assistant message of a TRL completion (a str or a list of messages)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        for message in reversed(completion):
            if isinstance(message, dict) and message.get("role", "assistant") == "assistant":
                content = message.get("content")
                if isinstance(content, list):
                    return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
                return str(content or "")
    return ""


def _get_reward(self: MedGymTRLEnvBase) -> float:
    """The env's reward of the finished episode."""
    return self._finish(None)


def make_environment_factory(
    base_url: Optional[str] = None,
    *,
    urls: Optional[Union[str, Sequence[str]]] = None,
    token: Optional[str] = None,
    env: Optional[str] = None,
    images: str = "auto",
    answer_tool: bool = True,
    owns_reward: bool = False,
    with_instructions: bool = True,
    unfinished_reward: float = 0.0,
    timeout: float = 30.0,
    class_name: str = "MedGymEnv",
) -> type:
    """Builds the ``environment_factory`` class for ``GRPOTrainer``.

    Args:
        base_url / urls: the server(s); each instance takes one, round-robin (see docs/bridges.md).
        token: bearer token (default ``$MEDGYM_TOKEN``).
        env: env id of the resets (``None``: the server default, or a row's ``env`` column).
        images: ``"pil"`` (tool responses and the reset carry the views as PIL images, for a VLM),
            ``"none"`` (text only, ``<|image|>`` placeholders kept) or ``"auto"`` (``"pil"`` when
            Pillow is installed).
        answer_tool: add an ``answer(answer)`` tool (the model may also answer in text:
            :func:`medgym_reward` reads its last message).
        owns_reward: define ``get_reward()`` (TRL then adds the env's reward itself; the episode must
            have ended through the ``answer`` tool). Default: pass :func:`medgym_reward` as reward func.
        with_instructions: include the env's instruction line in the text ``reset`` returns.
        unfinished_reward: the reward of an episode that did not end (no answer).
        class_name: ``__name__`` of the class (TRL logs an owned reward under it).
    """
    url_list = resolve_urls(base_url, urls)
    if images == "auto":
        images = "pil" if have_pillow() else "none"
    if images not in ("pil", "none"):
        raise ValueError(f'images must be "pil", "none" or "auto", got {images!r}')
    carry = images == "pil"
    with MedGymClient(url_list[0], token=token, timeout=timeout) as probe:
        tools = probe.tools()
    namespace: Dict[str, Any] = {}
    exec_globals: Dict[str, Any] = {"Any": Any, "Dict": Dict, "List": List, "Optional": Optional}
    for tool in tools:
        src = _tool_method_source(tool, carry)
        if src is not None:
            exec(src, exec_globals, namespace)  # noqa: S102 - source built from the tool schema above
    attrs: Dict[str, Any] = dict(namespace)
    for fn in attrs.values():
        fn.__module__ = __name__
    if answer_tool:
        attrs["answer"] = _answer_method(carry)
    if owns_reward:
        attrs["get_reward"] = _get_reward
    attrs.update(
        _urls=url_list,
        _token=token,
        _env_id=env,
        _images=images,
        _with_instructions=with_instructions,
        _unfinished_reward=float(unfinished_reward),
        _timeout=timeout,
        _tool_names=[t["name"] for t in tools if t["name"] in namespace],
        __module__=__name__,
    )
    return type(class_name, (MedGymTRLEnvBase,), attrs)


def medgym_reward(completions: Sequence[Any], environments: Optional[Sequence[MedGymTRLEnvBase]] = None, **kwargs: Any) -> List[Optional[float]]:
    """TRL reward function: the env's reward of each rollout.

    Ends each still-running episode with the ``<answer>X</answer>`` of the completion's last assistant
    message (when there is one), then returns the env's reward (``unfinished_reward`` for an episode
    that did not end). Pass it as ``reward_funcs=medgym_reward`` with the factory's class.
    """
    if environments is None:
        raise ValueError("medgym_reward needs TRL's environments= (use it with environment_factory)")
    return [env._finish(c) if isinstance(env, MedGymTRLEnvBase) else None for c, env in zip(completions, environments)]
