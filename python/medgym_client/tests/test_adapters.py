"""Tests of the trainer adapters (medgym_client.adapters) against a live env server.

test/server/python_adapters.test.ts starts a server and runs this file with
``PYTHONPATH=python/medgym_client`` and ``MEDGYM_URL``. None of trl / verl / skyrl_gym is installed
there: each test drives an adapter the way its trainer does (a small fake loop calling its methods
in the framework's order) with a fixed seed and bounded turns, and checks that the episode ends
with the env's own reward (the same seed and actions played with the plain client).

By hand: ``npx medgym serve-env`` and ``MEDGYM_URL=http://127.0.0.1:8000 /usr/bin/python3 -B
python/medgym_client/tests/test_adapters.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import sys
import typing
import unittest
from types import SimpleNamespace
from typing import Any, Dict, List

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


def tool_methods(instance: Any) -> Dict[str, Any]:
    """What TRL's GRPOTrainer turns into tools: public bound methods but reset / get_reward."""
    return {
        name: m
        for name, m in inspect.getmembers(instance, predicate=inspect.ismethod)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    }


@unittest.skipUnless(URL, "MEDGYM_URL is not set")
class TRLAdapterTest(unittest.TestCase):
    def test_imports_without_trl(self) -> None:
        import medgym_client.adapters as adapters

        self.assertNotIn("trl", sys.modules)
        self.assertTrue(callable(adapters.make_environment_factory))

    def test_tools_follow_the_server_and_have_schemas(self) -> None:
        from medgym_client.adapters.trl import make_environment_factory

        factory = make_environment_factory(URL, images="none")
        env = factory()
        try:
            tools = tool_methods(env)
            with MedGymClient(URL) as c:
                served = {t["name"] for t in c.tools()}
            self.assertEqual(set(tools), served | {"answer"})
            for name, method in tools.items():
                # transformers' get_json_schema needs resolvable hints and a documented argument each.
                hints = typing.get_type_hints(method)
                doc = inspect.getdoc(method) or ""
                self.assertIn("return", hints, name)
                for param in inspect.signature(method).parameters:
                    self.assertIn(param, hints, f"{name}.{param}")
                    self.assertRegex(doc, rf"\n\s*{param}: \S", f"{name}: no doc for {param}")
            self.assertIn("(choices: [\"equalize\", \"clahe\", \"sharpen\"])", inspect.getdoc(tools["enhance"]))
            self.assertNotIn("window", inspect.signature(tools["zoom_in"]).parameters)
        finally:
            env._close()

    def _rollout(self, factory: type, reward_funcs: List[Any], answer_in_text: bool) -> List[float]:
        """GRPOTrainer's order: factory() per rollout, reset(**row), tool calls by name with the
        model's parsed arguments, then the reward funcs with completions= and environments=."""
        rows = [{"prompt": [{"role": "user", "content": "Look, then answer."}], "seed": SEED} for _ in range(2)]
        envs = [factory() for _ in rows]
        completions = []
        for env, row in zip(envs, rows):
            obs = env.reset(**row)
            self.assertIsInstance(obs, (str, list))
            tools = tool_methods(env)
            calls = [{"name": "zoom_in", "arguments": {"cell": "B3"}}]
            if not answer_in_text:
                calls.append({"name": "answer", "arguments": {"answer": "A"}})
            completion: List[Dict[str, Any]] = []
            for call in calls[:MAX_TURNS]:
                result = tools[call["name"]](**call["arguments"])
                content = result if isinstance(result, list) else str(result)
                completion += [
                    {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": call}]},
                    {"role": "tool", "name": call["name"], "content": content},
                ]
            completion.append({"role": "assistant", "content": ANSWER if answer_in_text else "Done."})
            completions.append(completion)
            self.assertIn("zoom_in", json.dumps(completion[1]["content"], default=str))
        rewards = [sum(r for r in per if r is not None) for per in zip(*[f(completions=completions, environments=envs) for f in reward_funcs])]
        for env in envs:
            env._close()
        return rewards

    def test_grpo_rollouts_answer_in_text(self) -> None:
        from medgym_client.adapters.trl import make_environment_factory, medgym_reward

        factory = make_environment_factory(URL, images="none")
        rewards = self._rollout(factory, [medgym_reward], answer_in_text=True)
        expected = reference_reward(SEED, [TOOL_CALL, ANSWER])
        self.assertEqual(rewards, [expected, expected])

    def test_grpo_rollouts_answer_tool_and_owned_reward(self) -> None:
        from medgym_client.adapters.trl import make_environment_factory

        factory = make_environment_factory(URL, images="pil" if _have_pil() else "none", owns_reward=True)
        self.assertTrue(callable(getattr(factory, "get_reward")))
        env_reward = lambda environments, **kw: [e.get_reward() for e in environments]  # noqa: E731 - as TRL wraps get_reward
        rewards = self._rollout(factory, [env_reward], answer_in_text=False)
        expected = reference_reward(SEED, [TOOL_CALL, ANSWER])
        self.assertEqual(rewards, [expected, expected])

    def test_images_as_content_blocks(self) -> None:
        from medgym_client.adapters.trl import make_environment_factory

        if not _have_pil():  # no skip (the jest runner fails on any): "auto" must fall back to text
            env = make_environment_factory(URL, images="auto")()
            try:
                self.assertIn("<|image|>", env.reset(prompt=[], seed=SEED))
                self.assertTrue(env.zoom_in(cell="B3").startswith("zoom_in"))
            finally:
                env._close()
            return

        env = make_environment_factory(URL, images="pil")()
        try:
            blocks = env.reset(prompt=[], seed=SEED)
            self.assertEqual([b["type"] for b in blocks].count("image"), 1)
            out = env.zoom_in(cell="B3")
            self.assertEqual([b["type"] for b in out], ["text", "image"])
            self.assertEqual(out[1]["image"].size, (64, 64))
            self.assertEqual(env.zoom_in(cell="Z9")[0]["text"][:6], "error:")
        finally:
            env._close()

    def test_unanswered_episode_gets_unfinished_reward(self) -> None:
        from medgym_client.adapters.trl import make_environment_factory, medgym_reward

        env = make_environment_factory(URL, images="none", unfinished_reward=-1.0)()
        try:
            env.reset(prompt="p", seed=SEED)
            self.assertEqual(medgym_reward(["no answer here"], environments=[env]), [-1.0])
        finally:
            env._close()


def _have_pil() -> bool:
    try:
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True


class FakeTokenizer:
    """Byte-level: encode = UTF-8 bytes, decode = their text (what verl's loop needs of a tokenizer)."""

    def encode(self, text: str, add_special_tokens: bool = False) -> List[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: List[int], skip_special_tokens: bool = True) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


class FakeServerManager:
    """verl's AsyncLLMServerManager.generate, answered by a scripted policy (one reply per turn)."""

    def __init__(self, replies: List[str]) -> None:
        self.replies = list(replies)
        self.prompts: List[str] = []

    async def generate(self, request_id: str, *, prompt_ids: List[int], sampling_params: Dict[str, Any], image_data: Any = None) -> Any:
        self.prompts.append(bytes(prompt_ids).decode("utf-8"))
        text = self.replies.pop(0) if self.replies else "..."
        ids = list(text.encode("utf-8"))
        return SimpleNamespace(token_ids=ids, log_probs=[-0.5] * len(ids))


@unittest.skipUnless(URL, "MEDGYM_URL is not set")
class VerlAdapterTest(unittest.TestCase):
    def make(self, replies: List[str], max_turns: int = MAX_TURNS, **kw: Any) -> Any:
        from medgym_client.adapters.verl import MedGymAgentLoop

        trainer_config = SimpleNamespace(config={"actor_rollout_ref": {"rollout": {"response_length": 8192}}})
        # hydra.utils.instantiate passes these, plus the YAML entry's keys.
        return MedGymAgentLoop(trainer_config=trainer_config, server_manager=FakeServerManager(replies), tokenizer=FakeTokenizer(), processor=None, name="medgym_agent", base_url=URL, max_turns=max_turns, **kw)

    def test_imports_without_verl(self) -> None:
        from medgym_client.adapters import verl as adapter

        self.assertFalse(adapter.HAVE_VERL)
        self.assertEqual(list(inspect.signature(adapter.MedGymAgentLoop.run).parameters)[:2], ["self", "sampling_params"])

    def test_one_episode(self) -> None:
        loop = self.make([TOOL_CALL, ANSWER])
        row = {"raw_prompt": [{"role": "user", "content": "x"}], "extra_info": {"seed": SEED, "index": 0}, "agent_name": "medgym_agent"}
        out = asyncio.run(loop.run({"temperature": 1.0}, **row))
        self.assertEqual(out.reward_score, reference_reward(SEED, [TOOL_CALL, ANSWER]))
        self.assertEqual(len(out.response_ids), len(out.response_mask))
        self.assertEqual(len(out.response_logprobs), len(out.response_ids))
        text = bytes(out.response_ids).decode("utf-8")
        gen = bytes(i for i, m in zip(out.response_ids, out.response_mask) if m == 1).decode("utf-8")
        self.assertEqual(gen, TOOL_CALL + ANSWER)
        self.assertIn("<tool_response>zoom_in", text)
        self.assertTrue(bytes(out.prompt_ids).decode("utf-8").endswith("assistant: "))
        self.assertTrue(out.extra_fields["medgym_done"])
        self.assertEqual(out.extra_fields["medgym_answer"], "A")
        self.assertEqual(out.num_turns, 5)
        self.assertGreater(out.metrics.tool_calls, 0.0)

    def test_bounded_turns(self) -> None:
        loop = self.make(["thinking"] * 10, max_turns=2, unfinished_reward=-0.5)
        out = asyncio.run(loop.run({}, seed=SEED))
        self.assertEqual(out.reward_score, -0.5)
        self.assertFalse(out.extra_fields["medgym_done"])
        self.assertEqual(sum(out.response_mask), 2 * len("thinking"))

    def test_concurrent_samples(self) -> None:
        async def many() -> List[Any]:
            loops = [self.make([TOOL_CALL, ANSWER]) for _ in range(4)]
            return await asyncio.gather(*(lp.run({}, seed=SEED) for lp in loops))

        outs = asyncio.run(many())
        expected = reference_reward(SEED, [TOOL_CALL, ANSWER])
        self.assertEqual([o.reward_score for o in outs], [expected] * 4)


@unittest.skipUnless(URL, "MEDGYM_URL is not set")
class SkyRLAdapterTest(unittest.TestCase):
    def generator_loop(self, env: Any, prompt: List[Dict[str, str]], policy: List[str]) -> Any:
        """skyrl_gym_generator's order: init(prompt), step(text) until done, get_metrics(), close()."""
        conversation, meta = env.init(prompt)
        outputs = []
        try:
            for text in policy:
                out = env.step(text)
                outputs.append(out)
                conversation += [{"role": "assistant", "content": text}] + out["observations"]
                if out["done"]:
                    break
            return conversation, meta, outputs, env.get_metrics()
        finally:
            env.close()

    def test_imports_without_skyrl(self) -> None:
        from medgym_client.adapters import skyrl as adapter

        self.assertFalse(adapter.HAVE_SKYRL)
        with self.assertRaises(ImportError):
            adapter.register_skyrl_env()

    def test_one_episode(self) -> None:
        from medgym_client.adapters.skyrl import MedGymTextEnv

        env = MedGymTextEnv(env_config={"url": URL}, extras={"seed": SEED, "max_turns": MAX_TURNS})
        conversation, meta, outputs, metrics = self.generator_loop(env, [{"role": "user", "content": "q"}], [TOOL_CALL, ANSWER])
        self.assertEqual(meta["seed"], SEED)
        self.assertEqual([m["role"] for m in conversation[:2]], ["system", "user"])
        self.assertIn("<|image|>", conversation[1]["content"])
        self.assertIn("<tool_call>", conversation[0]["content"])  # unescaped
        self.assertEqual(len(outputs), 2)
        first, last = outputs
        self.assertEqual(set(first), {"observations", "reward", "done", "metadata", "postprocessed_action"})
        self.assertFalse(first["done"])
        self.assertEqual(first["reward"], 0.0)
        self.assertTrue(first["observations"][0]["content"].startswith("zoom_in"))
        self.assertTrue(last["done"])
        self.assertEqual(last["observations"], [])
        self.assertEqual(last["reward"], reference_reward(SEED, [TOOL_CALL, ANSWER]))
        self.assertEqual(metrics["tool_calls"], 1.0)

    def test_max_turns_and_append_mode(self) -> None:
        from medgym_client.adapters.skyrl import MedGymTextEnv

        env = MedGymTextEnv(env_config={"urls": [URL, URL], "prompt_mode": "append", "unfinished_reward": -1.0}, extras={"seed": SEED, "max_turns": 2})
        conversation, _, outputs, _ = self.generator_loop(env, [{"role": "user", "content": "Question:"}], ["hmm", "hmm", "hmm"])
        self.assertEqual(len(conversation[0]), 2)
        self.assertTrue(conversation[0]["content"].startswith("Question:\n"))
        self.assertEqual(len(outputs), 2)
        self.assertTrue(outputs[-1]["done"])
        self.assertTrue(outputs[-1]["metadata"]["unfinished"])
        self.assertEqual(outputs[-1]["reward"], -1.0)


class ServerChoiceTest(unittest.TestCase):
    def test_urls(self) -> None:
        from medgym_client.adapters._common import pick_url, resolve_urls

        self.assertEqual(resolve_urls(urls="http://a:1, http://b:2"), ["http://a:1", "http://b:2"])
        self.assertEqual(resolve_urls("http://a:1"), ["http://a:1"])
        self.assertEqual(pick_url(["a", "b", "c"], key=4), "b")
        seen = {pick_url(["a", "b"]) for _ in range(4)}
        self.assertEqual(seen, {"a", "b"})
        saved = {k: os.environ.pop(k) for k in ("MEDGYM_URL", "MEDGYM_URLS") if k in os.environ}
        try:
            with self.assertRaises(ValueError):
                resolve_urls()
            os.environ["MEDGYM_URLS"] = "http://x:1,http://y:2"
            self.assertEqual(resolve_urls(), ["http://x:1", "http://y:2"])
        finally:
            os.environ.pop("MEDGYM_URLS", None)
            os.environ.update(saved)

    def test_text_helpers(self) -> None:
        from medgym_client.adapters._common import extract_answer, seed_of, tool_call_text

        self.assertEqual(extract_answer("<answer>B</answer> then <answer> C </answer>"), "C")
        self.assertIsNone(extract_answer("no"))
        self.assertEqual(json.loads(re.sub(r"</?tool_call>", "", tool_call_text("zoom_in", {"cell": "B3"}))), {"name": "zoom_in", "arguments": {"cell": "B3"}})
        self.assertEqual(seed_of({"extra_info": {"seed": 3}}), 3)
        self.assertEqual(seed_of({}, "same prompt"), seed_of({"x": 1}, "same prompt"))
        self.assertIsNone(seed_of({}))


if __name__ == "__main__":
    unittest.main(verbosity=2)
