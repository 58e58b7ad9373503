"""labkit.serve: the /predict endpoint, its 4xx refusals, dynamic batching, the server's life cycle
(always stopped, port released) and the bounded load test."""
import threading

import numpy as np
import pytest
import torch

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from labkit import serve as S  # noqa: E402


def echo_predict(x):
    """Scores whose argmax is the index of the example's largest pixel, so each answer is checkable."""
    return x.reshape(len(x), -1)


@pytest.fixture(scope="module")
def server():
    app = S.make_app(echo_predict, input_shape=(1, 4, 4), max_batch=8)
    with S.serve(app) as url:
        yield url


def test_a_good_batch_gets_its_predictions(server):
    x = np.zeros((3, 16), dtype=np.float32)
    x[0, 5], x[1, 0], x[2, 15] = 1, 1, 1
    nested = x.reshape(3, 4, 4).tolist()                       # 4 rows of 4: the shape without its leading 1
    for inputs in (x.tolist(), nested, x.reshape(3, 1, 4, 4).tolist()):
        r = httpx.post(f"{server}/predict", json={"inputs": inputs})
        assert r.status_code == 200
        body = r.json()
        assert body["predictions"] == [5, 0, 15]
        assert np.allclose(np.sum(body["probabilities"], axis=1), 1, atol=1e-4)


@pytest.mark.parametrize("body, status, words", [
    ({"images": [[0] * 16]}, 422, "no 'inputs' field"),
    ({"inputs": [["a"] * 16]}, 422, "not an array of numbers"),
    ({"inputs": [[0] * 15]}, 422, "shape [15]"),
    ({"inputs": [[0] * 16, [0] * 17]}, 422, "inputs[1]"),
    ({"inputs": [[[0] * 16]] * 2}, 422, "shape [1, 16]"),
    ({"inputs": [[0] * 16] * 9}, 413, "max_batch=8"),
    ({"inputs": []}, 422, "non-empty list"),
    ({"inputs": "0,0,0"}, 422, "non-empty list"),
    ({"inputs": None}, 422, "non-empty list"),
])
def test_bad_input_is_refused_with_a_message(server, body, status, words):
    r = httpx.post(f"{server}/predict", json=body)
    assert r.status_code == status
    assert words in r.json()["detail"]


@pytest.mark.parametrize("raw, words", [
    (b'{"inputs": [[' + b", ".join([b"NaN"] * 16) + b"]]}", "NaN or infinity"),
    (b'{"inputs": [[' + b", ".join([b"Infinity"] * 16) + b"]]}", "NaN or infinity"),
    (b"not json", "send a JSON object"),
    (b"[1, 2, 3]", "send a JSON object"),
])
def test_bodies_that_are_not_plain_json_are_refused(server, raw, words):
    r = httpx.post(f"{server}/predict", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422 and words in r.json()["detail"]


def test_health_counts_model_calls(server):
    before = httpx.get(f"{server}/health").json()
    httpx.post(f"{server}/predict", json={"inputs": [[0] * 16] * 3})
    after = httpx.get(f"{server}/health").json()
    assert after["status"] == "ok" and after["batching"] is True
    assert after["examples"] - before["examples"] == 3


def test_the_batcher_merges_concurrent_requests_and_answers_each_its_own():
    seen = []

    def slow_predict(x):
        seen.append(len(x))
        threading.Event().wait(0.01)                            # a model call with a real cost
        return echo_predict(x)

    app = S.make_app(slow_predict, input_shape=(16,), max_batch=64, max_wait_ms=20)
    answers, errors = {}, []

    def client(k):
        x = np.zeros((1, 16))
        x[0, k] = 1
        try:
            answers[k] = httpx.post(f"{url}/predict", json={"inputs": x.tolist()}, timeout=30).json()["predictions"]
        except Exception as e:                                  # pragma: no cover - reported below
            errors.append(e)

    with S.serve(app) as url:
        threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        health = httpx.get(f"{url}/health").json()
    assert not errors
    assert answers == {k: [k] for k in range(16)}               # every client got its own row back
    assert health["examples"] == 16 and health["model_calls"] < 16 and max(seen) > 1


def test_without_batching_each_request_is_one_call():
    app = S.make_app(echo_predict, input_shape=(16,), batching=False)
    with S.serve(app) as url:
        for _ in range(3):
            httpx.post(f"{url}/predict", json={"inputs": [[0] * 16]})
        assert httpx.get(f"{url}/health").json()["model_calls"] == 3


def test_a_failing_model_gives_500_and_the_server_keeps_serving():
    calls = []

    def flaky(x):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("model crashed")
        return echo_predict(x)

    with S.serve(S.make_app(flaky, input_shape=(16,)), ) as url:
        assert httpx.post(f"{url}/predict", json={"inputs": [[0] * 16]}).status_code == 500
        assert httpx.post(f"{url}/predict", json={"inputs": [[0] * 16]}).status_code == 200


def test_the_server_stops_and_releases_its_port():
    with S.serve(S.make_app(echo_predict, input_shape=(16,))) as url:
        port = int(url.rsplit(":", 1)[1])
        assert not S.port_is_free(port)
    assert S.port_is_free(port)
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{url}/predict", json={"inputs": [[0] * 16]}, timeout=2)


def test_an_error_inside_the_with_block_still_stops_the_server():
    with pytest.raises(KeyError):
        with S.serve(S.make_app(echo_predict, input_shape=(16,))) as url:
            port = int(url.rsplit(":", 1)[1])
            raise KeyError("the notebook cell failed")
    assert S.port_is_free(port)


@pytest.mark.parametrize("kwargs, words", [
    (dict(predict="model"), "predict must be a callable"),
    (dict(max_batch=0), "max_batch"),
    (dict(max_wait_ms=-1), "max_wait_ms"),
    (dict(max_wait_ms=float("nan")), "max_wait_ms"),
    (dict(input_shape=(1, 0, 8)), "input_shape"),
])
def test_make_app_checks_its_options(kwargs, words):
    options = {"predict": echo_predict, "input_shape": (1, 8, 8), **kwargs}
    with pytest.raises((TypeError, ValueError), match=words):
        S.make_app(options.pop("predict"), **options)


def test_only_loopback_addresses_are_served():
    with pytest.raises(ValueError, match="loopback"):
        with S.serve(S.make_app(echo_predict, input_shape=(16,)), host="0.0.0.0"):
            pass
    with pytest.raises(SystemExit):
        S.main(["model.onnx", "--input-shape", "16", "--host", "0.0.0.0"])


@pytest.mark.parametrize("kwargs, words", [(dict(clients=0), "clients"), (dict(requests=0), "requests"),
                                           (dict(timeout=0), "timeout"), (dict(clients=1000), "clients")])
def test_load_test_is_bounded_and_checks_its_options(kwargs, words):
    with pytest.raises(ValueError, match=words):
        S.load_test("http://127.0.0.1:9", {"inputs": [[0] * 16]}, **kwargs)


def test_load_test_counts_and_percentiles(server):
    stats = S.load_test(server, {"inputs": [[0] * 16]}, clients=3, requests=4, timeout=30)
    assert stats["requests"] == 12 and stats["errors"] == 0
    assert 0 < stats["p50_ms"] <= stats["p95_ms"] <= stats["max_ms"]
    assert stats["requests_per_s"] > 0 and stats["examples_per_s"] == pytest.approx(stats["requests_per_s"])


def test_load_test_counts_refusals_as_errors(server):
    stats = S.load_test(server, {"inputs": [[0] * 3]}, clients=2, requests=2, timeout=30)
    assert stats["requests"] == 0 and stats["errors"] == 4


def test_an_onnx_file_is_served_from_its_own_process(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4)).eval()
    x = torch.randn(2, 1, 4, 4)
    path = tmp_path / "tiny.onnx"
    batch = torch.export.Dim("batch", min=1, max=1024)
    torch.onnx.export(torch.export.export(model, (x,), dynamic_shapes={"input": {0: batch}}), (x,), path,
                      dynamo=True, input_names=["x"], external_data=False, verbose=False)
    inputs = torch.randn(5, 1, 4, 4)
    with S.serve_file(path, input_shape=(1, 4, 4)) as url:
        port = int(url.rsplit(":", 1)[1])
        body = httpx.post(f"{url}/predict", json={"inputs": inputs.tolist()}).json()
        assert body["predictions"] == model(inputs).argmax(1).tolist()
        assert httpx.post(f"{url}/predict", json={"inputs": [[0] * 15]}).status_code == 422
    assert S.port_is_free(port)
    with pytest.raises(FileNotFoundError, match="no ONNX model"):
        with S.serve_file(tmp_path / "missing.onnx", input_shape=(16,)):
            pass
