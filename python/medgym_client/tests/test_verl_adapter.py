"""verl's AgentLoop adapter against a live env server: the text path with a byte tokenizer, and the
image path with a fake Qwen-style processor and server manager that record what they get, called in
verl's order (verl is not installed)."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import re
import unittest
from types import SimpleNamespace
from typing import Any, Dict, List

from medgym_client.types import decode_png
from adapter_fixtures import URL, SEED, MAX_TURNS, TOOL_CALL, ANSWER, reference_reward, reference_episode, have_pil


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


SPECIAL = ["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"]
SPECIAL_ID = {t: 1000 + k for k, t in enumerate(SPECIAL)}
IM_END, VISION_START, IMAGE_PAD = SPECIAL_ID["<|im_end|>"], SPECIAL_ID["<|vision_start|>"], SPECIAL_ID["<|image_pad|>"]
DEFAULT_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL) + ")")


def render_qwen(messages: List[Dict[str, Any]], add_generation_prompt: bool) -> str:
    """A Qwen2-VL-like chat template: a default system message when none is given, image parts as
    ``<|vision_start|><|image_pad|><|vision_end|>``, ``<|im_start|>assistant\\n`` as the generation prompt."""
    out = "" if messages and messages[0].get("role") == "system" else DEFAULT_SYSTEM
    for m in messages:
        out += f"<|im_start|>{m['role']}\n"
        content = m["content"]
        if isinstance(content, str):
            out += content
        else:
            for part in content:
                out += "<|vision_start|><|image_pad|><|vision_end|>" if part["type"] == "image" else part["text"]
        out += "<|im_end|>\n"
    return out + ("<|im_start|>assistant\n" if add_generation_prompt else "")


class FakeVLTokenizer:
    """Byte-level with Qwen's special tokens (ids 1000+); ``apply_chat_template`` renders :func:`render_qwen`."""

    def encode(self, text: str, add_special_tokens: bool = False) -> List[int]:
        ids: List[int] = []
        for piece in _SPECIAL_RE.split(text):
            ids += [SPECIAL_ID[piece]] if piece in SPECIAL_ID else list(piece.encode("utf-8"))
        return ids

    def decode(self, ids: List[int], skip_special_tokens: bool = True) -> str:
        out, buf = [], bytearray()
        for i in ids:
            if i < 256:
                buf.append(i)
                continue
            out.append(buf.decode("utf-8"))
            buf = bytearray()
            if not skip_special_tokens:
                out.append(SPECIAL[i - 1000])
        out.append(buf.decode("utf-8"))
        return "".join(out)

    def apply_chat_template(self, messages: List[Dict[str, Any]], add_generation_prompt: bool = False, tokenize: bool = True, **kw: Any) -> Any:
        text = render_qwen(messages, add_generation_prompt)
        return self.encode(text) if tokenize else text


def pads_of(view: Any) -> int:
    """Image tokens per view in the fake processor: one per 32x32 patch."""
    return max(1, view.w * view.h // 1024)


class FakeProcessor:
    """A VLM processor (Qwen2-VL's shape): ``apply_chat_template(..., tokenize=False)`` gives the text,
    ``processor(text=[...], images=[...], return_tensors="pt")`` expands each ``<|image_pad|>`` to the
    image's token count. Every call is logged (shared log with the server manager)."""

    image_processor = SimpleNamespace(patch_size=14)

    def __init__(self, tokenizer: FakeVLTokenizer, log: List[Any]) -> None:
        self.tokenizer = tokenizer
        self.log = log

    def apply_chat_template(self, messages: List[Dict[str, Any]], tools: Any = None, add_generation_prompt: bool = False, tokenize: bool = True, **kw: Any) -> str:
        assert tokenize is False and add_generation_prompt is True and tools is None, (tokenize, add_generation_prompt, tools)
        self.log.append(("template", json.loads(json.dumps(messages))))
        return render_qwen(messages, add_generation_prompt)

    def __call__(self, text: List[str], images: Any = None, return_tensors: Any = None, **kw: Any) -> Dict[str, Any]:
        images = list(images or [])
        assert return_tensors == "pt" and len(text) == 1
        assert text[0].count("<|image_pad|>") == len(images), (text[0].count("<|image_pad|>"), len(images))
        self.log.append(("processor", images))
        ids: List[int] = []
        k = 0
        for t in self.tokenizer.encode(text[0]):
            if t == IMAGE_PAD:
                ids += [IMAGE_PAD] * pads_of(images[k])
                k += 1
            else:
                ids.append(t)
        return {"input_ids": [ids], "attention_mask": [[1] * len(ids)]}


class FakeVLServerManager:
    """verl's server manager for a VLM: records prompt ids and image_data; replies end with <|im_end|>."""

    def __init__(self, replies: List[str], tokenizer: FakeVLTokenizer, log: List[Any]) -> None:
        self.replies = list(replies)
        self.tokenizer = tokenizer
        self.log = log

    async def generate(self, request_id: str, *, prompt_ids: List[int], sampling_params: Dict[str, Any], image_data: Any = None, video_data: Any = None) -> Any:
        self.log.append(("generate", list(prompt_ids), list(image_data or [])))
        assert sum(1 for t in prompt_ids if t == VISION_START) == len(image_data or []), "image_data and image pads disagree"
        ids = self.tokenizer.encode(self.replies.pop(0) if self.replies else "...") + [IM_END]
        return SimpleNamespace(token_ids=ids, log_probs=[-0.25] * len(ids))


@unittest.skipUnless(URL, "MEDGYM_URL is not set")
class VerlImageTest(unittest.TestCase):
    """The processor path: chat messages, images to generate(image_data=...), multi_modal_data."""

    def make(self, replies: List[str], **kw: Any) -> Any:
        from medgym_client.adapters.verl import MedGymAgentLoop

        self.log: List[Any] = []
        tok = FakeVLTokenizer()
        trainer_config = SimpleNamespace(config={"actor_rollout_ref": {"rollout": {"response_length": 8192}}})
        kw.setdefault("image_type", "view")
        return MedGymAgentLoop(
            trainer_config=trainer_config,
            server_manager=FakeVLServerManager(replies, tok, self.log),
            tokenizer=tok,
            processor=FakeProcessor(tok, self.log),
            name="medgym_agent",
            base_url=URL,
            max_turns=MAX_TURNS,
            **kw,
        )

    def test_images_reach_the_model(self) -> None:
        ref = reference_episode(SEED, [TOOL_CALL, ANSWER])
        loop = self.make([TOOL_CALL, ANSWER])
        out = asyncio.run(loop.run({"temperature": 1.0}, seed=SEED))
        self.assertEqual(out.reward_score, ref.reward)
        self.assertTrue(out.extra_fields["medgym_done"])
        # verl's order: template → processor → generate, then per tool turn template → processor → generate.
        self.assertEqual([e[0] for e in self.log], ["template", "processor", "generate", "template", "processor", "generate"])
        first = self.log[0][1]
        self.assertEqual([m["role"] for m in first], ["system", "user"])
        self.assertIn("<tool_call>", first[0]["content"])  # unescaped
        n0 = ref.texts[0].count("<|image|>")
        self.assertEqual(n0, 1)
        self.assertEqual([p["type"] for p in first[1]["content"]], ["image"] * n0 + ["text"])
        self.assertTrue(first[1]["content"][-1]["text"].startswith("What is"))
        tool = self.log[3][1]
        self.assertEqual(len(tool), 1)
        self.assertEqual(tool[0]["role"], "tool")
        self.assertEqual([p["type"] for p in tool[0]["content"]], ["text"] + ["image"] * ref.texts[1].count("<|image|>"))
        self.assertTrue(tool[0]["content"][0]["text"].startswith("zoom_in ["))
        # images: count = <|image|> count, in order, pixels hash to the server's sha256
        all_shas = [s for step in ref.shas for s in step]
        self.assertEqual(len(all_shas), sum(t.count("<|image|>") for t in ref.texts))
        self.assertEqual([len(e[2]) for e in self.log if e[0] == "generate"], [n0, len(all_shas)])
        images = out.multi_modal_data["images"]
        self.assertIs(out.multi_modal_data["image"], images)
        self.assertEqual([v.sha256 for v in images], all_shas)
        for v in images:
            self.assertEqual(hashlib.sha256(decode_png(v.png_bytes())[3]).hexdigest(), v.sha256)
        self.assertEqual([len(e[1]) for e in self.log if e[0] == "processor"], [n0, len(all_shas) - n0])
        # ids: image pads in prompt + response, one run per image
        ids = out.prompt_ids + out.response_ids
        self.assertEqual(ids.count(VISION_START), len(images))
        self.assertEqual(ids.count(IMAGE_PAD), sum(pads_of(v) for v in images))
        tok = FakeVLTokenizer()
        self.assertTrue(tok.decode(out.prompt_ids, skip_special_tokens=False).startswith("<|im_start|>system\nZoom"))
        self.assertTrue(tok.decode(out.prompt_ids, skip_special_tokens=False).endswith("<|im_start|>assistant\n"))
        # masks: generated ids verbatim (with <|im_end|>) at 1, the tool turn at 0, system prefix cut off
        self.assertEqual(len(out.response_ids), len(out.response_mask))
        self.assertEqual(len(out.response_logprobs), len(out.response_ids))
        gen = [i for i, m in zip(out.response_ids, out.response_mask) if m == 1]
        self.assertEqual(gen.count(IM_END), 2)
        self.assertEqual(tok.decode(gen), TOOL_CALL + ANSWER)
        obs = [i for i, m in zip(out.response_ids, out.response_mask) if m == 0]
        obs_text = tok.decode(obs, skip_special_tokens=False)
        self.assertTrue(obs_text.startswith("<|im_start|>tool\nzoom_in ["), obs_text[:40])
        self.assertTrue(obs_text.endswith("<|im_end|>\n<|im_start|>assistant\n"))
        self.assertNotIn("You are a helpful assistant", obs_text)
        self.assertEqual(out.response_mask, [1] * (len(TOOL_CALL.encode()) + 1) + [0] * len(obs) + [1] * (len(ANSWER.encode()) + 1))
        # generate saw the whole sequence so far each turn
        second = [e for e in self.log if e[0] == "generate"][1]
        self.assertEqual(second[1], out.prompt_ids + out.response_ids[: len(second[1]) - len(out.prompt_ids)])
        self.assertEqual(out.extra_fields["medgym_views"], len(images))

    def test_error_turn_and_tool_role(self) -> None:
        bad = '<tool_call>{"name": "zoom_in", "arguments": {"cell": "Z9"}}</tool_call>'
        loop = self.make([bad, ANSWER], tool_role="user")
        out = asyncio.run(loop.run({}, seed=SEED))
        self.assertEqual(out.reward_score, reference_reward(SEED, [bad, ANSWER]))
        tool = self.log[3][1]
        self.assertEqual(tool, [{"role": "user", "content": tool[0]["content"]}])
        self.assertTrue(tool[0]["content"].startswith("error:"))  # no view: a plain string, as verl's text tool message
        self.assertEqual(len(out.multi_modal_data["images"]), 1)

    def test_response_length_stops_before_a_tool_turn(self) -> None:
        loop = self.make([TOOL_CALL, ANSWER], response_length=len(TOOL_CALL) + 8, unfinished_reward=-1.0)
        out = asyncio.run(loop.run({}, seed=SEED))
        self.assertEqual(out.reward_score, -1.0)
        self.assertFalse(out.extra_fields["medgym_done"])
        self.assertEqual(out.response_mask, [1] * len(out.response_ids))  # never ends on a cut tool turn
        self.assertEqual(len(out.multi_modal_data["images"]), 1)

    def test_images_none_keeps_the_text_path(self) -> None:
        from medgym_client.adapters.verl import MedGymAgentLoop

        log: List[Any] = []
        sm = FakeServerManager([TOOL_CALL, ANSWER])
        loop = MedGymAgentLoop(SimpleNamespace(config={}), sm, FakeTokenizer(), FakeProcessor(FakeVLTokenizer(), log), base_url=URL, images="none")
        self.assertFalse(loop.uses_images)
        out = asyncio.run(loop.run({}, seed=SEED))
        self.assertEqual(log, [])
        self.assertIsNone(out.multi_modal_data)
        self.assertIn("<|image|>", sm.prompts[0])
        self.assertEqual(out.reward_score, reference_reward(SEED, [TOOL_CALL, ANSWER]))

    def test_image_type(self) -> None:
        from medgym_client.adapters.verl import MedGymAgentLoop

        with self.assertRaises(ValueError):
            self.make([], image_type="jpeg")
        loop = self.make([TOOL_CALL, ANSWER], image_type="auto")
        if not have_pil():  # no skip (the jest runner fails on any): "auto" falls back to the views
            self.assertEqual(loop.image_type, "view")
            return
        self.assertEqual(loop.image_type, "rgb")
        out = asyncio.run(loop.run({}, seed=SEED))
        self.assertEqual([(im.mode, im.size) for im in out.multi_modal_data["images"]], [("RGB", (64, 64))] * 2)
        self.assertIsInstance(MedGymAgentLoop, type)


if __name__ == "__main__":
    unittest.main(verbosity=2)
