"""lk.check: right answers pass, wrong ones get a hint that never shows the expected value."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import labkit as lk
from labkit.exercises import check

HINT = "think about the concept"


def run(capsys, *args, **kwargs):
    """(returned bool, printed text) of one check."""
    kwargs.setdefault("hint", HINT)
    ok = check(*args, **kwargs)
    out = capsys.readouterr().out
    assert out.count("\n") == 1, out          # exactly one line
    return ok, out


def test_reexported():
    assert lk.check is check
    assert "check" in lk.__all__


# ---- numbers ----------------------------------------------------------------------------------

def test_number_right_within_rtol(capsys):
    ok, out = run(capsys, "slope", 2.0 + 1e-6, 2.0)
    assert ok is True
    assert out == "✓ slope: correct\n"


def test_number_wrong_prints_hint_not_expected(capsys):
    ok, out = run(capsys, "slope", 1.5, 2.7182818)
    assert ok is False
    assert out.startswith("✗ slope: not yet — think about the concept")
    assert "2.718" not in out and "2.7" not in out


@pytest.mark.parametrize("answer, expected, rtol, atol, ok", [
    (1.0, 1.04, 0.05, 0.0, True),
    (1.0, 1.06, 0.05, 0.0, False),
    (0.0, 1e-9, 1e-5, 1e-8, True),       # atol matters near zero
    (0.0, 1e-6, 1e-5, 1e-8, False),
    (3, 3.0, 1e-5, 1e-8, True),          # int vs float
])
def test_number_tolerances(capsys, answer, expected, rtol, atol, ok):
    assert run(capsys, "x", answer, expected, rtol=rtol, atol=atol)[0] is ok


@pytest.mark.parametrize("answer", [np.float32(0.25), np.float64(0.25), torch.tensor(0.25),
                                    np.array(0.25), torch.tensor(0.25, requires_grad=True) * 1,
                                    torch.tensor(0.25, dtype=torch.bfloat16)])
def test_number_answer_types(capsys, answer):
    assert run(capsys, "x", answer, 0.25)[0] is True
    assert run(capsys, "x", answer, torch.tensor(0.25))[0] is True


def test_number_given_an_array_names_its_shape(capsys):
    ok, out = run(capsys, "loss", torch.tensor([0.5]), 0.5)
    assert ok is False and "single number" in out and "(1,)" in out


@pytest.mark.parametrize("answer, words", [
    (None, "None"), ("0.5", "str"), (True, "bool"), (math.nan, "NaN"), (math.inf, "infinite"),
    (lambda: 0.5, "function"),
])
def test_number_wrong_kinds_of_answer(capsys, answer, words):
    ok, out = run(capsys, "x", answer, 0.5)
    assert ok is False and words in out and "0.5" not in out


# ---- arrays and tensors -----------------------------------------------------------------------

def test_array_right(capsys):
    e = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    assert run(capsys, "w", e.numpy() * (1 + 1e-7), e)[0] is True
    assert run(capsys, "w", e.tolist(), e)[0] is True                        # nested lists
    assert run(capsys, "w", e.clone().requires_grad_(), e.numpy())[0] is True


def test_array_shape_checked_first(capsys):
    e = torch.arange(6.0).reshape(2, 3)
    ok, out = run(capsys, "w", e.T, e)                                    # same values, transposed
    assert ok is False
    assert "shape mismatch" in out and "(2, 3)" in out and "(3, 2)" in out


def test_array_broadcast_shape_is_caught(capsys):
    # the classic: theta of shape (n, 1) where (n,) was meant -- values would broadcast
    e = torch.tensor([1.0, 2.0, 3.0])
    ok, out = run(capsys, "theta", e[:, None], e)
    assert ok is False and "shape mismatch" in out


def test_array_wrong_values_never_printed(capsys):
    e = np.array([3.14159, 2.71828, 1.41421])
    ok, out = run(capsys, "v", np.array([3.14159, 0.0, 1.41421]), e)
    assert ok is False
    assert "1 of 3 entries" in out
    for value in ("3.14", "2.71", "1.41"):
        assert value not in out


def test_array_nan_entries_reported(capsys):
    ok, out = run(capsys, "v", np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    assert ok is False and "NaN" in out


def test_array_of_bools_and_strings(capsys):
    assert run(capsys, "mask", np.array([True, False]), torch.tensor([True, False]))[0] is True
    assert run(capsys, "mask", [True, True], torch.tensor([True, False]))[0] is False
    assert run(capsys, "order", [" Linear", "relu "], ["linear", "ReLU"])[0] is True
    assert run(capsys, "order", ["relu", "linear"], ["linear", "ReLU"])[0] is False


def test_array_given_a_non_array(capsys):
    ok, out = run(capsys, "v", "abc", np.zeros(3))
    assert ok is False and "shape (3,)" in out


# ---- bools and strings ------------------------------------------------------------------------

def test_bool(capsys):
    assert run(capsys, "converges", True, True)[0] is True
    assert run(capsys, "converges", np.bool_(False), False)[0] is True
    ok, out = run(capsys, "converges", False, True)
    assert ok is False and "not the right truth value" in out
    ok, out = run(capsys, "converges", 1, True)
    assert ok is False and "True or False" in out


def test_string(capsys):
    assert run(capsys, "act", "  ReLU ", "relu")[0] is True
    ok, out = run(capsys, "act", "tanh", "sigmoid")
    assert ok is False and "sigmoid" not in out
    assert run(capsys, "act", 3, "sigmoid")[0] is False


# ---- structures -------------------------------------------------------------------------------

def test_tuple_of_arrays(capsys):
    e = (torch.tensor(0.5), torch.zeros(3))
    assert run(capsys, "loss_and_grad", (0.5, np.zeros(3)), e)[0] is True
    ok, out = run(capsys, "loss_and_grad", (0.5, np.zeros((3, 1))), e)
    assert ok is False and "item 1" in out and "shape mismatch" in out
    assert run(capsys, "loss_and_grad", (0.5,), e)[0] is False


def test_dict(capsys):
    e = {"mean": 0.0, "std": 1.0}
    assert run(capsys, "stats", {"mean": 1e-9, "std": 1.0}, e)[0] is True
    ok, out = run(capsys, "stats", {"mean": 0.0}, e)
    assert ok is False and "missing keys ['std']" in out


# ---- functions --------------------------------------------------------------------------------

def test_function_right_on_all_inputs(capsys):
    xs = [torch.randn(5), torch.linspace(-30, 30, 7)]
    ok, out = run(capsys, "sigmoid", lambda z: 1 / (1 + torch.exp(-z)), torch.sigmoid, inputs=xs)
    assert ok is True and out == "✓ sigmoid: correct\n"


def test_function_wrong_names_the_input_index_not_values(capsys):
    xs = [torch.zeros(3), torch.ones(3)]
    ok, out = run(capsys, "sigmoid", lambda z: 0.5 + 0 * z, torch.sigmoid, inputs=xs)
    assert ok is False and "on input 1" in out and "0.73" not in out


def test_function_with_several_arguments_and_a_module(capsys):
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)

    def mine(x):
        return x @ layer.weight.T + layer.bias

    assert run(capsys, "linear", mine, layer, inputs=[torch.randn(4, 3)])[0] is True

    def mse(yhat, y):
        return ((yhat - y) ** 2).mean()

    pairs = [(torch.randn(5), torch.randn(5)), (torch.zeros(2), torch.ones(2))]
    assert run(capsys, "mse", lambda a, b: ((a - b) ** 2).sum(), mse, inputs=pairs)[0] is False
    assert run(capsys, "mse", lambda a, b: torch.nn.functional.mse_loss(a, b), mse, inputs=pairs)[0] is True


def test_function_that_raises_is_a_wrong_answer(capsys):
    ok, out = run(capsys, "f", lambda x: x.nonexistent(), torch.sigmoid, inputs=[torch.zeros(2)])
    assert ok is False and "raised AttributeError" in out


def test_function_answer_modifying_its_input_cannot_fool_the_reference(capsys):
    def cheat(x):
        x.zero_()
        return x
    assert run(capsys, "f", cheat, lambda x: x * 0 + 1, inputs=[torch.ones(3)])[0] is False


def test_function_expected_but_value_given(capsys):
    ok, out = run(capsys, "f", torch.zeros(2), torch.sigmoid, inputs=[torch.zeros(2)])
    assert ok is False and "expected a function" in out


# ---- mistakes in the call itself --------------------------------------------------------------

def test_unsupported_expected_type_is_a_clear_type_error():
    with pytest.raises(TypeError, match="cannot compare an expected value of type set"):
        check("x", {1}, {1}, hint=HINT)
    with pytest.raises(TypeError, match="expected is None"):
        check("x", 1, None, hint=HINT)
    with pytest.raises(TypeError, match="dtype object"):
        check("x", 1, np.array([object()]), hint=HINT)


def test_function_without_inputs():
    with pytest.raises(TypeError, match="inputs must be given"):
        check("f", torch.sigmoid, torch.sigmoid, hint=HINT)
    with pytest.raises(ValueError, match="at least one input"):
        check("f", torch.sigmoid, torch.sigmoid, hint=HINT, inputs=[])
    with pytest.raises(TypeError, match="only used when expected is a function"):
        check("x", 1.0, 1.0, hint=HINT, inputs=[1])


@pytest.mark.parametrize("kwargs, exc, words", [
    ({"rtol": -1}, ValueError, "rtol"), ({"atol": math.nan}, ValueError, "atol"),
    ({"rtol": "1e-3"}, TypeError, "rtol"), ({"hint": ""}, TypeError, "hint"),
    ({"hint": None}, TypeError, "hint"),
])
def test_bad_arguments(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        check("x", 1.0, 1.0, **{"hint": HINT, **kwargs})
    with pytest.raises(TypeError, match="name"):
        check("", 1.0, 1.0, hint=HINT)


def test_hint_is_required():
    with pytest.raises(TypeError):
        check("x", 1.0, 1.0)       # noqa: the hint is keyword-only and required


# ---- the expected value never appears in the output, whatever the answer ----------------------

@pytest.mark.parametrize("expected", [
    0.123456, -98765.4321, 42, np.array([0.123456, 0.654321]), torch.tensor([[7.654321]]),
    "backpropagation", (0.123456, np.array([0.654321])), {"k": 0.123456},
])
@pytest.mark.parametrize("answer", [None, 0.0, -1, "x", np.zeros(2), torch.zeros(1, 1), (0.0, np.zeros(1)),
                                    {"k": 0.0}, lambda: 0, [1.0, 2.0, 3.0]])
def test_expected_value_never_printed(capsys, expected, answer):
    ok, out = run(capsys, "ex", answer, expected, hint="h")
    assert ok is False
    e = expected
    texts = []
    for v in (e if isinstance(e, tuple) else (e,)):
        if isinstance(v, dict):
            v = list(v.values())[0]
        if isinstance(v, str):
            texts.append(v)
        else:
            for x in np.asarray(v, dtype=float).ravel():
                texts += [repr(float(x)), f"{x:g}", f"{x:.3f}", f"{x:.4f}"]
    for t in texts:
        assert t not in out, (t, out)
