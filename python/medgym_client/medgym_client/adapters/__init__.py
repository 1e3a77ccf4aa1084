"""Trainer adapters on top of the medgym client (docs/bridges.md, "Trainer adapters").

- :mod:`medgym_client.adapters.trl`: ``make_environment_factory`` (``GRPOTrainer(environment_factory=...)``)
  and the reward function ``medgym_reward``.
- :mod:`medgym_client.adapters.verl`: ``MedGymAgentLoop`` (a verl ``AgentLoopBase``).
- :mod:`medgym_client.adapters.skyrl`: ``MedGymTextEnv`` (a SkyRL-gym ``BaseTextEnv``) and ``register_skyrl_env``.

None of trl / verl / skyrl_gym is needed to import them: each module uses the framework's base
classes when it is installed and minimal stand-ins with the same shape otherwise. Submodules are
imported on first use, so ``import medgym_client.adapters`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["MedGymAgentLoop", "MedGymTextEnv", "make_environment_factory", "medgym_reward", "register_skyrl_env"]

_WHERE = {
    "make_environment_factory": "trl",
    "medgym_reward": "trl",
    "MedGymAgentLoop": "verl",
    "MedGymTextEnv": "skyrl",
    "register_skyrl_env": "skyrl",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
