"""The adapters' shared helpers without a server: picking a server URL, text helpers, and the Python
twins of the env text parsers (parseEnvPrompt / parseEnvResponse)."""

from __future__ import annotations

import json
import os
import re
import unittest

from medgym_client.types import ImageView, Observation


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


    def test_env_text_parsers(self) -> None:
        from medgym_client.adapters._common import parse_env_prompt, parse_env_response, response_blocks
        from medgym_client.types import Observation

        p = parse_env_prompt("<|bos|>Use &lt;tool_call>.\nuser: <|image|><|image|>\nWhat?\nA. x\nassistant: ")
        self.assertEqual(tuple(p), ("Use <tool_call>.", "What?\nA. x", 2))
        self.assertEqual(parse_env_prompt("s\nuser: q\nassistant: ", unescape=False), ("s", "q", 0))
        with self.assertRaises(ValueError):
            parse_env_prompt("no layout")
        blocks = parse_env_response("\n<tool_response>zoom_in [0, 0, 64, 64]<|image|></tool_response>\n<tool_response>error: &lt;x></tool_response>\nassistant: ")
        self.assertEqual([tuple(b) for b in blocks], [("zoom_in [0, 0, 64, 64]", 1), ("error: <x>", 0)])
        view = ImageView(data="", w=1, h=1, channels=1, sha256="")
        fixed = response_blocks(Observation(text="\n<tool_response>a<|image|></tool_response>\nassistant: ", tokens=[], images=[view, view]))
        self.assertEqual([tuple(b) for b in fixed], [("a", 2)])
        plain = response_blocks(Observation(text="odd<|image|>\nassistant: ", tokens=[], images=[view]))
        self.assertEqual([tuple(b) for b in plain], [("odd", 1)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
