"""The paper's MLLM judge protocol, against any OpenAI-compatible vision chat endpoint (vLLM, llama.cpp, Ollama).

For a generated (test) image of a (content, style) pair:
- content: "Does the test image show the same subject as the support image? Answer with Yes or No only." asked
  once per support image of the subject; the majority of answers decides;
- style: "Is the test image in the <style> style? Answer with Yes or No only.", with the style's reference image;
- the image counts as "both correct" when both pass.
"""

from __future__ import annotations

import base64
import io
import json
import re
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CONTENT_QUESTION = "Does the test image show the same subject as the support image? Answer with Yes or No only."
STYLE_QUESTION = "Is the test image in the {style} style? Answer with Yes or No only."

Ask = Callable[[list[dict[str, Any]]], str]


def png_data_url(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def content_messages(test: np.ndarray, support: np.ndarray) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Support image:"},
                {"type": "image_url", "image_url": {"url": png_data_url(support)}},
                {"type": "text", "text": "Test image:"},
                {"type": "image_url", "image_url": {"url": png_data_url(test)}},
                {"type": "text", "text": CONTENT_QUESTION},
            ],
        }
    ]


def style_messages(test: np.ndarray, style_name: str, reference: np.ndarray | None) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    if reference is not None:
        content += [
            {"type": "text", "text": f"Reference image of the {style_name} style:"},
            {"type": "image_url", "image_url": {"url": png_data_url(reference)}},
        ]
    content += [
        {"type": "text", "text": "Test image:"},
        {"type": "image_url", "image_url": {"url": png_data_url(test)}},
        {"type": "text", "text": STYLE_QUESTION.format(style=style_name)},
    ]
    return [{"role": "user", "content": content}]


def parse_answer(text: str) -> bool | None:
    """Yes -> True, No -> False, anything else -> None (counted as a failure)."""
    words = re.findall(r"[a-z]+", text.strip().lower())
    if not words:
        return None
    if words[0] in ("yes", "y"):
        return True
    if words[0] in ("no", "n"):
        return False
    return None


def majority(answers: Sequence[bool | None]) -> bool:
    """True when more than half of the answers are yes (unparseable answers count as no)."""
    return sum(1 for a in answers if a) * 2 > len(answers)


@dataclass
class Verdict:
    content: bool
    style: bool

    @property
    def both(self) -> bool:
        return self.content and self.style


def judge_image(
    ask: Ask, test: np.ndarray, supports: Sequence[np.ndarray], style_name: str, style_reference: np.ndarray | None
) -> Verdict:
    content = majority([parse_answer(ask(content_messages(test, s))) for s in supports])
    style = parse_answer(ask(style_messages(test, style_name, style_reference))) is True
    return Verdict(content, style)


def aggregate(verdicts: Sequence[Verdict]) -> dict[str, float]:
    n = max(len(verdicts), 1)
    return {
        "content_fidelity": sum(v.content for v in verdicts) / n,
        "style_fidelity": sum(v.style for v in verdicts) / n,
        "both_correct": sum(v.both for v in verdicts) / n,
    }


def openai_asker(url: str, model: str = "default", api_key: str | None = None, timeout: float = 120) -> Ask:
    """Posts chat completions to `url` (a base like http://host:8000/v1, or the full .../chat/completions)."""
    endpoint = url if url.rstrip("/").endswith("/chat/completions") else url.rstrip("/") + "/chat/completions"

    def ask(messages: list[dict[str, Any]]) -> str:
        body = json.dumps({"model": model, "messages": messages, "max_tokens": 4, "temperature": 0}).encode()
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read())
        return str(reply["choices"][0]["message"]["content"])

    return ask
