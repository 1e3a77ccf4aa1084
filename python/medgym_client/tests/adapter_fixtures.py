"""What the adapter tests share: the live server's URL (``MEDGYM_URL``), the scripted episode and its
reference played with the plain client, for comparing an adapter's reward and views with the env's."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any, List

from medgym_client import MedGymClient


URL = os.environ.get("MEDGYM_URL", "")
SEED = 7
MAX_TURNS = 6
TOOL_CALL = '<tool_call>{"name": "zoom_in", "arguments": {"cell": "B3"}}</tool_call>'
ANSWER = "<answer>A</answer>"


def reference_reward(seed: int, actions: List[str]) -> float:
    """The env's reward for these actions, played with the plain client."""
    with MedGymClient(URL) as c:
        r = c.reset(seed=seed)
        for a in actions:
            r = c.step(a)
            if r.done:
                return float(r.reward)
    raise AssertionError("reference episode did not end")


def reference_episode(seed: int, actions: List[str]) -> Any:
    """The same episode played with the plain client: its texts, views (sha256 per step) and reward."""
    texts, shas, reward = [], [], None
    with MedGymClient(URL) as c:
        r = c.reset(seed=seed)
        texts.append(r.observation.text)
        shas.append([v.sha256 for v in r.observation.images])
        for a in actions:
            r = c.step(a)
            if r.done:
                reward = float(r.reward)
                break
            texts.append(r.observation.text)
            shas.append([v.sha256 for v in r.observation.images])
    return SimpleNamespace(texts=texts, shas=shas, reward=reward)


def have_pil() -> bool:
    """Pillow is installed (the PIL image tests run only then)."""
    try:
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True
