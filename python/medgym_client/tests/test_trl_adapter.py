"""TRL's environment_factory adapter against a live env server (run by
test/server/python_adapters.test.ts with ``PYTHONPATH=python/medgym_client`` and ``MEDGYM_URL``; trl is
not installed: a fake loop calls it in GRPOTrainer's order)."""

from __future__ import annotations

import inspect
import json
import sys
import typing
import unittest
from typing import Any, Dict, List

from medgym_client import MedGymClient
from adapter_fixtures import URL, SEED, MAX_TURNS, TOOL_CALL, ANSWER, reference_reward, have_pil


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

        factory = make_environment_factory(URL, images="pil" if have_pil() else "none", owns_reward=True)
        self.assertTrue(callable(getattr(factory, "get_reward")))
        env_reward = lambda environments, **kw: [e.get_reward() for e in environments]  # noqa: E731 - as TRL wraps get_reward
        rewards = self._rollout(factory, [env_reward], answer_in_text=False)
        expected = reference_reward(SEED, [TOOL_CALL, ANSWER])
        self.assertEqual(rewards, [expected, expected])

    def test_images_as_content_blocks(self) -> None:
        from medgym_client.adapters.trl import make_environment_factory

        if not have_pil():  # no skip (the jest runner fails on any): "auto" must fall back to text
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
