"""medgym-client: drive medgym's env server (``medgym serve-env``) from Python.

- :class:`MedGymClient`: HTTP, blocking; one session (``episode_id``) per client.
- :class:`AsyncMedGymClient`: the same, ``await``-ed.
- :class:`MedGymWSClient`: WebSocket ``/ws``, one env per socket (needs ``websocket-client``).

Actions are text (``step``), medgym token ids (``step_tokens``) or MCP tool calls (``call_tool``).
Results are :class:`StepResult` (``observation``, ``reward``, ``done``, ``metadata``); server
errors are :class:`MedGymError` (``status``, ``code``, ``message``). See docs/bridges.md.
"""

from .client import AsyncMedGymClient, MedGymClient
from .types import ImageView, MedGymError, Observation, StepMetadata, StepResult, ToolCallResult, decode_png
from .ws_client import MedGymWSClient, ws_url_of

__version__ = "0.1.0"

__all__ = [
    "AsyncMedGymClient",
    "ImageView",
    "MedGymClient",
    "MedGymError",
    "MedGymWSClient",
    "Observation",
    "StepMetadata",
    "StepResult",
    "ToolCallResult",
    "decode_png",
    "ws_url_of",
]
