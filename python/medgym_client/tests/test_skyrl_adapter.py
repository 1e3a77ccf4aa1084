"""SkyRL's BaseTextEnv adapter against a live env server, text and image_url observations (skyrl_gym
is not installed: a fake loop calls init / step as SkyRL's generator does)."""

from __future__ import annotations

import base64
import hashlib
import json
import unittest
from typing import Any, Dict, List

from medgym_client.types import decode_png
from adapter_fixtures import URL, SEED, MAX_TURNS, TOOL_CALL, ANSWER, reference_reward, reference_episode


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


    def _check_part(self, part: Dict[str, Any], sha: str) -> None:
        self.assertEqual(part["type"], "image_url")
        url = part["image_url"]["url"]
        self.assertTrue(url.startswith("data:image/png;base64,"))
        png = base64.b64decode(url.split(",", 1)[1])
        self.assertEqual(hashlib.sha256(decode_png(png)[3]).hexdigest(), sha)

    def test_images_as_image_url_parts(self) -> None:
        from medgym_client.adapters.skyrl import MedGymTextEnv

        ref = reference_episode(SEED, [TOOL_CALL, ANSWER])
        env = MedGymTextEnv(env_config={"url": URL, "images": "image_url"}, extras={"seed": SEED, "max_turns": MAX_TURNS})
        conversation, meta, outputs, _ = self.generator_loop(env, [{"role": "user", "content": "q"}], [TOOL_CALL, ANSWER])
        self.assertEqual(meta["views"], 1)
        system, user = conversation[:2]
        self.assertEqual(system["role"], "system")
        self.assertIn("<tool_call>", system["content"])
        self.assertEqual([p["type"] for p in user["content"]], ["image_url"] * ref.texts[0].count("<|image|>") + ["text"])
        self.assertNotIn("<|image|>", json.dumps(conversation))
        self._check_part(user["content"][0], ref.shas[0][0])
        obs = outputs[0]["observations"]
        self.assertEqual([m["role"] for m in obs], ["user"])
        self.assertEqual([p["type"] for p in obs[0]["content"]], ["text"] + ["image_url"] * ref.texts[1].count("<|image|>"))
        self.assertTrue(obs[0]["content"][0]["text"].startswith("zoom_in ["))
        self._check_part(obs[0]["content"][1], ref.shas[1][0])
        self.assertEqual(outputs[0]["metadata"]["views"], 1)
        self.assertEqual(outputs[-1]["reward"], ref.reward)
        self.assertEqual(outputs[-1]["observations"], [])

    def test_images_append_mode_and_blobs(self) -> None:
        from medgym_client.adapters.skyrl import MedGymTextEnv

        ref = reference_episode(SEED, [TOOL_CALL, ANSWER])
        env = MedGymTextEnv(env_config={"url": URL, "images": "image_url", "prompt_mode": "append"}, extras={"seed": SEED, "max_turns": MAX_TURNS})
        real_reset = env.session.client.reset
        env.session.client.reset = lambda seed=None, env=None, options=None: real_reset(seed=seed, env=env, options={**(options or {}), "images": "blobs"})
        conversation, _, outputs, _ = self.generator_loop(env, [{"role": "user", "content": "Question:"}], [TOOL_CALL, ANSWER])
        self.assertEqual(len(conversation[0]), 2)
        parts = conversation[0]["content"]
        self.assertEqual([p["type"] for p in parts], ["text", "text", "image_url", "text"])
        self.assertEqual(parts[0]["text"], "Question:")
        self._check_part(parts[2], ref.shas[0][0])  # fetched from /blobs
        self._check_part(outputs[0]["observations"][0]["content"][1], ref.shas[1][0])
        with self.assertRaises(ValueError):
            MedGymTextEnv(env_config={"url": URL, "images": "pil"}, extras={})


if __name__ == "__main__":
    unittest.main(verbosity=2)
