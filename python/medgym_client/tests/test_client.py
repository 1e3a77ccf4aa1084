"""Tests of medgym_client against a live env server.

test/server/python_client.test.ts starts the servers and runs this file with
``PYTHONPATH=python/medgym_client``. Environment:

- ``MEDGYM_URL``: a server without a token, e.g. ``http://127.0.0.1:41234``.
- ``MEDGYM_TOKEN_URL`` and ``MEDGYM_TOKEN``: a server that requires that bearer token.

Run by hand: ``npx medgym serve-env --port 8000`` and ``MEDGYM_URL=http://127.0.0.1:8000
/usr/bin/python3 python/medgym_client/tests/test_client.py`` (the token tests are skipped then).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple

import requests

from medgym_client import AsyncMedGymClient, MedGymClient, MedGymError, MedGymWSClient, StepResult, ws_url_of

URL = os.environ.get("MEDGYM_URL", "")
TOKEN_URL = os.environ.get("MEDGYM_TOKEN_URL", "")
TOKEN = os.environ.get("MEDGYM_TOKEN", "")
#: {"tool_call": ids, "answer": ids}: TOOL_CALL and ANSWER in medgym's tokenizer (the jest runner sets it).
ENCODED = json.loads(os.environ.get("MEDGYM_ENCODED", "null"))

SEED = 7
MAX_STEPS = 8  # an episode here takes 2 turns; the bound keeps a broken env from looping
TOOL_CALL = '<tool_call>{"name": "zoom_in", "arguments": {"cell": "B3"}}</tool_call>'
ANSWER = "<answer>A</answer>"


def run_episode(reset: Callable[[], StepResult], step: Callable[[str], StepResult]) -> List[StepResult]:
    """Reset, one zoom, then answers until done (bounded). Returns [reset, step, step, ...]."""
    results = [reset()]
    for k in range(MAX_STEPS):
        r = step(TOOL_CALL if k == 0 else ANSWER)
        results.append(r)
        if r.done:
            return results
    raise AssertionError(f"episode did not end in {MAX_STEPS} steps")


def summary(results: List[StepResult]) -> List[Tuple[Any, ...]]:
    """What must be equal between transports: text, tokens, views, reward, done, flags, info."""
    return [
        (
            r.observation.text,
            r.observation.tokens,
            [(i.w, i.h, i.channels, i.sha256) for i in r.observation.images],
            r.reward,
            r.done,
            r.metadata.terminated,
            r.metadata.truncated,
            r.metadata.info,
        )
        for r in results
    ]


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StubServer:
    """A stdlib HTTP server answering a fixed list of (status, body) in turn; counts requests."""

    def __init__(self, answers: List[Tuple[int, Dict[str, Any]]]) -> None:
        self.answers = list(answers)
        self.hits = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status, body = stub.answers[min(stub.hits, len(stub.answers) - 1)]
                stub.hits += 1
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "StubServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@unittest.skipUnless(URL, "MEDGYM_URL is not set")
class HttpTests(unittest.TestCase):
    def test_full_episode(self) -> None:
        with MedGymClient(URL) as env:
            self.assertEqual(env.health(), {"status": "healthy"})
            meta = env.metadata()
            self.assertEqual(meta["name"], "medgym")
            self.assertIn(meta["env"], [e["id"] for e in meta["envs"]])
            tools = env.tools()
            self.assertIn("zoom_in", [t["name"] for t in tools])
            self.assertEqual(tools[0]["inputSchema"]["type"], "object")

            results = run_episode(lambda: env.reset(seed=SEED), env.step)
            first, last = results[0], results[-1]
            self.assertIsNotNone(env.episode_id)
            self.assertEqual(first.episode_id, env.episode_id)
            self.assertIsNone(first.reward)
            self.assertFalse(first.done)
            self.assertTrue(first.observation.text)
            self.assertTrue(first.observation.tokens)
            for r in results:
                # one view per <|image|>, each decodable to the pixels the server hashed
                self.assertEqual(len(r.observation.images), r.observation.text.count("<|image|>"))
                for im in r.observation.images:
                    self.assertTrue(im.png_bytes().startswith(b"\x89PNG"))
                    self.assertTrue(im.verify(), f"pixels of a {im.w}x{im.h}x{im.channels} view do not match its sha256")
            self.assertGreater(len(results[1].observation.images), 0, "zoom_in returned no view")
            self.assertTrue(last.done)
            self.assertTrue(last.metadata.terminated or last.metadata.truncated)
            self.assertIsInstance(last.reward, (int, float))
            self.assertIsInstance(last.metadata.info, dict)

            state = env.state()
            self.assertEqual(state["episode_id"], env.episode_id)
            self.assertEqual(state["step_count"], len(results) - 1)
            self.assertTrue(state["done"])
            self.assertEqual(state["episodes"], 1)
            with self.assertRaises(MedGymError) as ctx:
                env.step(ANSWER)
            self.assertEqual((ctx.exception.status, ctx.exception.code), (409, "EPISODE_DONE"))

            # A second reset reuses the session; the same seed gives the same episode.
            again = run_episode(lambda: env.reset(seed=SEED), env.step)
            self.assertEqual(again[0].episode_id, first.episode_id)
            self.assertEqual(summary(again), summary(results))
            self.assertEqual(env.state()["episodes"], 2)
            episode_id = env.episode_id
        # Leaving the with block closed the session on the server.
        self.assertIsNone(env.episode_id)
        probe = MedGymClient(URL)
        probe.episode_id = episode_id
        with self.assertRaises(MedGymError) as ctx:
            probe.state()
        self.assertEqual((ctx.exception.status, ctx.exception.code), (404, "NOT_FOUND"))
        probe.episode_id = None
        probe.close()

    def test_token_ids_tool_calls_and_blobs_equal_text_steps(self) -> None:
        self.assertIsNotNone(ENCODED, "MEDGYM_ENCODED is not set: run this file from test/server/python_client.test.ts")
        by_ids = {TOOL_CALL: ENCODED["tool_call"], ANSWER: ENCODED["answer"]}
        with MedGymClient(URL) as a, MedGymClient(URL) as b, MedGymClient(URL) as c:
            text = run_episode(lambda: a.reset(seed=SEED), a.step)
            ids = run_episode(lambda: b.reset(seed=SEED), lambda t: b.step_tokens(by_ids[t]))
            self.assertEqual(summary(ids), summary(text))

            # Views by reference: no data until fetched, then the same pixels the server hashed.
            first = c.reset(seed=SEED, options={"images": "blobs"})
            view = first.observation.images[0]
            self.assertEqual((view.data, view.uri), ("", f"/blobs/{view.sha256}"))
            with self.assertRaises(ValueError):
                view.png_bytes()
            self.assertTrue(c.fetch_image(view).verify())
            self.assertEqual(view.sha256, text[0].observation.images[0].sha256)

            # tools/call is the text step of the same call: same response, reward and views.
            called = c.call_tool("zoom_in", {"cell": "B3"})
            self.assertFalse(called.is_error)
            self.assertEqual((called.observation.text, called.reward, called.done), (text[1].observation.text, text[1].reward, text[1].done))
            self.assertTrue(called.text and called.text in called.observation.text)
            self.assertEqual([i.sha256 for i in called.observation.images], [i.sha256 for i in text[1].observation.images])
            for im in called.observation.images:
                self.assertTrue(c.fetch_image(im).verify())
            bad = c.call_tool("zoom_in", {"cell": "Z9"})
            self.assertTrue(bad.is_error)

    def test_errors_are_medgym_errors_and_4xx_are_not_retried(self) -> None:
        env = MedGymClient(URL, retries=3, backoff=0.01)
        calls = []
        original = env._http.request

        def counting(*args: Any, **kwargs: Any) -> requests.Response:
            calls.append(args[:2])
            return original(*args, **kwargs)

        env._http.request = counting  # type: ignore[method-assign]
        env.episode_id = "no-such-episode"
        with self.assertRaises(MedGymError) as ctx:
            env.step(ANSWER)
        err = ctx.exception
        self.assertEqual((err.status, err.code), (404, "NOT_FOUND"))
        self.assertIn("no-such-episode", err.message)
        self.assertEqual(len(calls), 1)
        env.episode_id = None

        with self.assertRaises(MedGymError) as ctx:
            env.step(ANSWER)  # no reset yet: refused before any request
        self.assertEqual(ctx.exception.code, "NO_EPISODE")
        with self.assertRaises(MedGymError) as ctx:
            env.reset(seed=-1)
        self.assertEqual((ctx.exception.status, ctx.exception.code), (400, "VALIDATION_ERROR"))
        self.assertIn("seed", ctx.exception.message)
        with self.assertRaises(MedGymError) as ctx:
            env.reset(env="MedVista-Synth-v9")
        self.assertEqual((ctx.exception.status, ctx.exception.code), (400, "VALIDATION_ERROR"))
        self.assertIsNone(env.episode_id)  # failed resets leave no session behind
        env.close()

    def test_async_client(self) -> None:
        async def episode() -> List[StepResult]:
            async with AsyncMedGymClient(URL) as env:
                self.assertEqual(await env.health(), {"status": "healthy"})
                results = [await env.reset(seed=SEED)]
                for k in range(MAX_STEPS):
                    r = await env.step(TOOL_CALL if k == 0 else ANSWER)
                    results.append(r)
                    if r.done:
                        break
                self.assertTrue((await env.state())["done"])
                return results

        async def main() -> Tuple[List[StepResult], List[StepResult], List[StepResult]]:
            # three sessions at once, one event loop
            a, b, c = await asyncio.gather(episode(), episode(), episode())
            return a, b, c

        a, b, c = asyncio.run(main())
        self.assertTrue(a[-1].done)
        self.assertEqual(summary(a), summary(b))
        self.assertEqual(summary(a), summary(c))
        with MedGymClient(URL) as env:
            self.assertEqual(summary(run_episode(lambda: env.reset(seed=SEED), env.step)), summary(a))


@unittest.skipUnless(URL, "MEDGYM_URL is not set")
class WebSocketTests(unittest.TestCase):
    def test_ws_episode_equals_http_episode(self) -> None:
        with MedGymWSClient(ws_url_of(URL)) as ws:
            over_ws = run_episode(lambda: ws.reset(seed=SEED), ws.step)
            state = ws.state()
            self.assertTrue(state["done"])
            self.assertEqual(state["step_count"], len(over_ws) - 1)
            with self.assertRaises(MedGymError) as ctx:
                ws.step(ANSWER)
            self.assertEqual((ctx.exception.status, ctx.exception.code), (409, "EPISODE_DONE"))
        with MedGymClient(URL) as env:
            over_http = run_episode(lambda: env.reset(seed=SEED), env.step)
        self.assertTrue(over_ws[-1].done)
        self.assertEqual(summary(over_ws), summary(over_http))
        for r in over_ws:
            for im in r.observation.images:
                self.assertTrue(im.verify())

    def test_ws_token_ids_and_tool_calls(self) -> None:
        self.assertIsNotNone(ENCODED, "MEDGYM_ENCODED is not set: run this file from test/server/python_client.test.ts")
        with MedGymClient(URL) as http_env, MedGymWSClient(ws_url_of(URL)) as ws:
            text = run_episode(lambda: http_env.reset(seed=SEED), http_env.step)
            ws.reset(seed=SEED)
            called = ws.call_tool("zoom_in", {"cell": "B3"})
            self.assertEqual((called.observation.text, called.reward, called.is_error), (text[1].observation.text, text[1].reward, False))
            last = ws.step_tokens(ENCODED["answer"])
            self.assertEqual((last.reward, last.done), (text[2].reward, text[2].done))

    def test_ws_errors_keep_the_socket(self) -> None:
        ws = MedGymWSClient(URL)  # an http:// base URL is turned into ws://…/ws
        try:
            with self.assertRaises(MedGymError) as ctx:
                ws.step(ANSWER)
            self.assertEqual((ctx.exception.status, ctx.exception.code), (409, "NO_EPISODE"))
            with self.assertRaises(MedGymError) as ctx:
                ws.reset(seed=-1)
            self.assertEqual(ctx.exception.code, "VALIDATION_ERROR")
            r = ws.reset(seed=SEED)
            self.assertFalse(r.done)
            self.assertEqual(ws.state()["step_count"], 0)
        finally:
            ws.close()
            ws.close()  # twice is fine

    def test_ws_url_of(self) -> None:
        self.assertEqual(ws_url_of("http://127.0.0.1:8000"), "ws://127.0.0.1:8000/ws")
        self.assertEqual(ws_url_of("https://h.example/"), "wss://h.example/ws")
        self.assertEqual(ws_url_of("ws://h:1/ws"), "ws://h:1/ws")
        with self.assertRaises(ValueError):
            ws_url_of("ftp://h")


@unittest.skipUnless(TOKEN_URL and TOKEN, "MEDGYM_TOKEN_URL / MEDGYM_TOKEN are not set")
class TokenTests(unittest.TestCase):
    def test_http_token(self) -> None:
        for token in (None, "wrong-" + TOKEN):
            with MedGymClient(TOKEN_URL, token=token) as env:
                self.assertEqual(env.health(), {"status": "healthy"})  # /health needs no token
                with self.assertRaises(MedGymError) as ctx:
                    env.reset(seed=SEED)
                self.assertEqual((ctx.exception.status, ctx.exception.code), (401, "UNAUTHORIZED"))
        with MedGymClient(TOKEN_URL, token=TOKEN) as env:
            self.assertEqual(env.metadata()["name"], "medgym")
            self.assertFalse(env.reset(seed=SEED).done)
            self.assertEqual(env.state()["step_count"], 0)

    def test_ws_token(self) -> None:
        ws = MedGymWSClient(TOKEN_URL, token="wrong-" + TOKEN)
        with self.assertRaises(MedGymError) as ctx:
            ws.connect()
        self.assertEqual((ctx.exception.status, ctx.exception.code), (401, "UNAUTHORIZED"))
        ws.close()
        with MedGymWSClient(TOKEN_URL, token=TOKEN) as ws:
            self.assertFalse(ws.reset(seed=SEED).done)


class ImportTests(unittest.TestCase):
    def test_http_client_works_without_websocket_client(self) -> None:
        import sys

        saved = sys.modules.get("websocket")
        sys.modules["websocket"] = None  # type: ignore[assignment]  # makes `import websocket` fail
        try:
            MedGymClient("http://127.0.0.1:1").close()
            with self.assertRaises(ImportError) as ctx:
                MedGymWSClient("ws://127.0.0.1:1/ws")
            self.assertIn("medgym-client[ws]", str(ctx.exception))
        finally:
            if saved is None:
                del sys.modules["websocket"]
            else:
                sys.modules["websocket"] = saved


class RetryTests(unittest.TestCase):
    """Retries against stub servers: connection errors and 503 are retried, 4xx never."""

    def test_503_is_retried_with_backoff(self) -> None:
        busy = (503, {"error": {"code": "CAPACITY_REACHED", "message": "all 1 sessions are in use"}})
        with StubServer([busy, busy, (200, {"status": "healthy"})]) as stub:
            with MedGymClient(stub.url, retries=2, backoff=0.01) as env:
                self.assertEqual(env.health(), {"status": "healthy"})
            self.assertEqual(stub.hits, 3)
        with StubServer([busy]) as stub:
            with MedGymClient(stub.url, retries=1, backoff=0.01) as env:
                with self.assertRaises(MedGymError) as ctx:
                    env.reset()
                self.assertEqual((ctx.exception.status, ctx.exception.code), (503, "CAPACITY_REACHED"))
            self.assertEqual(stub.hits, 2)

    def test_4xx_is_not_retried(self) -> None:
        busy = (409, {"error": {"code": "SESSION_BUSY", "message": "still running"}})
        with StubServer([busy, (200, {})]) as stub:
            env = MedGymClient(stub.url, retries=3, backoff=0.01)
            env.episode_id = "e1"
            with self.assertRaises(MedGymError) as ctx:
                env.step(ANSWER)
            self.assertEqual((ctx.exception.status, ctx.exception.code), (409, "SESSION_BUSY"))
            self.assertEqual(stub.hits, 1)
            env.episode_id = None
            env.close()

    def test_error_body_without_error_object(self) -> None:
        with StubServer([(502, {"not": "an error object"})]) as stub:
            with MedGymClient(stub.url, retries=0) as env:
                with self.assertRaises(MedGymError) as ctx:
                    env.health()
                self.assertEqual((ctx.exception.status, ctx.exception.code), (502, "HTTP_ERROR"))

    def test_connection_errors_are_retried(self) -> None:
        env = MedGymClient(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01, timeout=2.0)
        calls: List[Optional[str]] = []
        original = env._http.request

        def counting(*args: Any, **kwargs: Any) -> requests.Response:
            calls.append(args[1])
            return original(*args, **kwargs)

        env._http.request = counting  # type: ignore[method-assign]
        with self.assertRaises(requests.ConnectionError):
            env.health()
        self.assertEqual(len(calls), 3)
        # A step is resent too, since the connection was never made.
        env.episode_id = "e1"
        calls.clear()
        with self.assertRaises(requests.ConnectionError):
            env.step(ANSWER)
        self.assertEqual(len(calls), 3)
        env.episode_id = None
        env.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
