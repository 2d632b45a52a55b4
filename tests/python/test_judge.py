"""The MLLM judge protocol: prompts, answer parsing, aggregation, and the HTTP client against a local fake."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import numpy as np
import pytest

from lorarar.world.judge import (
    CONTENT_QUESTION,
    Verdict,
    aggregate,
    content_messages,
    judge_image,
    majority,
    openai_asker,
    parse_answer,
    style_messages,
)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("Yes", True),
        ("yes.", True),
        (" YES, it is", True),
        ("No", False),
        ("no!", False),
        ("Maybe", None),
        ("", None),
        ("I think yes", None),
    ],
)
def test_parse_answer(text: str, want: bool | None) -> None:
    assert parse_answer(text) is want


def test_majority_and_aggregate() -> None:
    assert majority([True, True, False]) and not majority([True, False]) and not majority([True, None, None])
    verdicts = [Verdict(True, True), Verdict(True, False), Verdict(False, True), Verdict(False, False)]
    assert aggregate(verdicts) == {"content_fidelity": 0.5, "style_fidelity": 0.5, "both_correct": 0.25}


def test_prompts_carry_images_and_questions() -> None:
    img = np.zeros((64, 64, 3), np.float32)
    msg = content_messages(img, img)[0]["content"]
    assert [part["type"] for part in msg] == ["text", "image_url", "text", "image_url", "text"]
    assert msg[-1]["text"] == CONTENT_QUESTION
    assert msg[1]["image_url"]["url"].startswith("data:image/png;base64,")
    style = style_messages(img, "ember", None)[0]["content"]
    assert style[-1]["text"] == "Is the test image in the ember style? Answer with Yes or No only."


class _Fake(BaseHTTPRequestHandler):
    answers: ClassVar[list[str]] = []
    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Fake.requests.append({"path": self.path, "body": body})
        reply = {"choices": [{"message": {"role": "assistant", "content": _Fake.answers.pop(0)}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_judge_against_a_local_openai_compatible_server() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Fake)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        ask = openai_asker(f"http://127.0.0.1:{server.server_port}/v1", model="judge")
        img = np.full((64, 64, 3), 0.5, np.float32)
        # Three supports (2 of 3 say yes: content passes), then the style question says no.
        _Fake.answers = ["Yes", "No", "yes", "No."]
        verdict = judge_image(ask, img, [img, img, img], "ember", img)
        assert verdict == Verdict(content=True, style=False)
        assert len(_Fake.requests) == 4
        first = _Fake.requests[0]
        assert first["path"] == "/v1/chat/completions"
        assert first["body"]["model"] == "judge" and first["body"]["temperature"] == 0
    finally:
        server.shutdown()
