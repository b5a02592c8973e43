"""The openai backend's HTTP behaviour (retries, concurrency, errors, request shape) against a real
HTTP server on 127.0.0.1 written with the standard library. Its replies are scripted: the model's side
is covered against a real `vllm serve` in test_llm_vllm_serve.py (.venv-llm)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors.dataset_card import DatasetCard
from models.llm import BackendConfig, SamplingOptions, build_backend
from models.llm.base import CaptionRequest
from models.llm.prompt import CAPTION_JSON_SCHEMA

CARD = DatasetCard.default("cxr", ["Cardiomegaly", "Effusion", "Nodule", "No Finding"], modality="X-ray")


class ChatServer:
    """A /v1/chat/completions endpoint; `reply(body, attempt)` returns (status, payload, headers)."""

    def __init__(self, reply):
        self.reply = reply
        self.bodies: list[dict] = []
        self.attempts: dict[str, int] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                with server.lock:
                    server.bodies.append(body)
                    attempt = server.attempts[prompt] = server.attempts.get(prompt, 0) + 1
                status, payload, headers = server.reply(body, attempt)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def completion(body, texts, finish="stop"):
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": finish}
            for i, t in enumerate(texts)
        ],
    }


def ok(body, attempt):
    texts = [json.dumps({"caption": f"X-ray caption {i}"}) for i in range(body["n"])]
    return 200, completion(body, texts), {}


def backend(url, **options):
    config = BackendConfig(kind="openai", base_url=url, model="served-model", timeout_s=20, **options)
    return build_backend(config)


def requests(n=3):
    return [
        CaptionRequest(CARD.facts([label]), n=n)
        for label in ("Cardiomegaly", "Effusion", "Nodule", "No Finding")
    ]


def test_request_shape_and_results_in_order():
    with ChatServer(ok) as server:
        client = backend(server.url, sampling=SamplingOptions(temperature=0.5, max_tokens=77, seed=3))
        results = client.generate(requests(n=3))
        client.close()
    assert [r.request.key for r in results] == [r.key for r in requests()]
    assert all(r.error is None and r.text_model == "openai:served-model" for r in results)
    assert [c.json for c in results[0].candidates] == [True] * 3
    body = server.bodies[0]
    assert body["model"] == "served-model" and body["n"] == 3
    assert (body["temperature"], body["max_completion_tokens"]) == (0.5, 77)
    assert body["response_format"]["json_schema"]["schema"] == CAPTION_JSON_SCHEMA
    assert body["messages"][0]["role"] == "system"
    seeds = {b["messages"][-1]["content"]: b["seed"] for b in server.bodies}
    assert len(set(seeds.values())) == 4  # one seed per request, from its key


def test_transient_errors_are_retried():
    def flaky(body, attempt):
        if attempt == 1:
            return 503, {"error": {"message": "busy"}}, {"retry-after-ms": "10"}
        if attempt == 2:
            return 429, {"error": {"message": "slow down"}}, {"retry-after-ms": "10"}
        return ok(body, attempt)

    with ChatServer(flaky) as server:
        client = backend(server.url, max_retries=3)
        results = client.generate(requests())
        client.close()
    assert all(r.error is None and len(r.candidates) == 3 for r in results)
    assert set(server.attempts.values()) == {3}


def test_persistent_failures_come_back_as_errors_not_exceptions():
    def broken(body, attempt):
        if "cardiomegaly" in body["messages"][-1]["content"]:
            return 500, {"error": {"message": "down"}}, {"retry-after-ms": "10"}
        if "nodule" in body["messages"][-1]["content"]:
            return 400, {"error": {"message": "bad request"}}, {}
        return ok(body, attempt)

    with ChatServer(broken) as server:
        client = backend(server.url, max_retries=2)
        results = client.generate(requests())
        client.close()
    errors = {r.request.key: r.error for r in results}
    assert errors["cxr/Cardiomegaly"].startswith("caption_llm_error: InternalServerError")
    assert errors["cxr/Nodule"].startswith("caption_llm_error: BadRequestError")
    assert errors["cxr/Effusion"] is None and errors["cxr/No Finding"] is None
    assert sorted(server.attempts.values()) == [1, 1, 1, 3]  # 4xx is not retried; 5xx up to max_retries


def test_requests_run_concurrently():
    """The server only answers once 4 requests are in flight at the same time (a barrier)."""
    barrier = threading.Barrier(4, timeout=10)

    def together(body, attempt):
        barrier.wait()
        return ok(body, attempt)

    with ChatServer(together) as server:
        client = backend(server.url, concurrency=4, max_retries=0)
        results = client.generate(requests())
        client.close()
    assert [r.error for r in results] == [None] * 4


def test_length_stops_and_plain_text_mode():
    def cut(body, attempt):
        return 200, completion(body, ["X-ray showing"] * body["n"], finish="length"), {}

    with ChatServer(cut) as server:
        client = backend(server.url, json_output=False)
        [result] = client.generate(requests(n=2)[:1])
        client.close()
    assert [(c.finish_reason, c.json) for c in result.candidates] == [("length", False)] * 2
    assert "response_format" not in server.bodies[0]


def test_unreachable_server_is_an_error():
    with ChatServer(ok) as server:
        url = server.url
    client = backend(url, max_retries=0)
    [result] = client.generate(requests()[:1])
    client.close()
    assert result.error.startswith("caption_llm_error: APIConnectionError")


@pytest.mark.parametrize("n", [1, 5])
def test_cached_openai_calls_are_not_repeated(tmp_path, n):
    with ChatServer(ok) as server:
        for _ in range(2):
            client = backend(server.url, cache_dir=str(tmp_path))
            results = client.generate(requests(n=n))
            client.close()
    assert len(server.bodies) == 4 and all(r.cached for r in results)
