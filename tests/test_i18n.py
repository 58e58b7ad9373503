"""labkit speaks Chinese where a learner reads it: language choice and the gettext catalog."""
import subprocess
import sys
from pathlib import Path

import pytest

from labkit import i18n
from labkit.checks import check_choice, check_int

LOCALE = Path(i18n.__file__).parent / "locale"


@pytest.fixture(autouse=True)
def english_afterwards(monkeypatch):
    for var in ("LABKIT_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    yield
    i18n.set_language(None)


def test_english_by_default_and_chinese_on_request():
    with pytest.raises(TypeError, match="epochs must be an int, got float 2.5"):
        check_int("epochs", 2.5)
    assert i18n.set_language("zh") == "zh"
    with pytest.raises(TypeError, match="epochs 必须是整数"):
        check_int("epochs", 2.5)
    with pytest.raises(ValueError, match="你是不是想写 'adam'"):
        check_choice("optimizer", "adm", ["adam", "sgd"])
    i18n.set_language("en")
    with pytest.raises(ValueError, match="did you mean 'adam'"):
        check_choice("optimizer", "adm", ["adam", "sgd"])


@pytest.mark.parametrize("env, expected", [({"LABKIT_LANG": "zh"}, "zh"), ({"LABKIT_LANG": "zh_CN.UTF-8"}, "zh"),
                                           ({"LANG": "zh_CN.UTF-8"}, "zh"), ({"LANG": "en_US.UTF-8"}, "en"),
                                           ({"LABKIT_LANG": "en", "LANG": "zh_CN.UTF-8"}, "en"), ({}, "en")])
def test_language_from_the_environment(monkeypatch, env, expected):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert i18n.get_language() == expected


def test_set_language_overrides_the_environment(monkeypatch):
    monkeypatch.setenv("LABKIT_LANG", "zh")
    i18n.set_language("en")
    assert i18n.get_language() == "en"
    i18n.set_language(None)
    assert i18n.get_language() == "zh"


@pytest.mark.parametrize("bad", ["klingon", "fr", ""])
def test_unknown_language_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="language must be one of"):
        i18n.set_language(bad)


def test_a_bad_labkit_lang_falls_back_to_english_with_a_word(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_LANG", "xx")
    assert i18n.get_language() == "en"
    assert "LABKIT_LANG must be one of" in capsys.readouterr().err


def test_set_language_type():
    with pytest.raises(TypeError, match="language must be a string"):
        i18n.set_language(3)


def test_the_catalog_translates_every_message():
    """Every string labkit marks with _() has a Chinese translation, and the compiled .mo is current."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    import io
    marked = {msg for _file, _line, msg, _comments, _ctx in
              extract_from_dir(str(LOCALE.parent), method_map=[("**.py", "python")], keywords={"_": None})}
    po = LOCALE / "zh" / "LC_MESSAGES" / "labkit.po"
    with po.open("rb") as f:
        catalog = read_po(f)
    translated = {m.id for m in catalog if m.id and m.string and "fuzzy" not in m.flags}
    missing = sorted(marked - translated)
    assert not missing, f"untranslated in {po.name} (pybabel extract/update, then translate): {missing[:5]}"
    for m in catalog:                      # the same {placeholders} on both sides
        if m.id and m.string:
            import re
            assert sorted(re.findall(r"\{[^}]*\}", m.id)) == sorted(re.findall(r"\{[^}]*\}", m.string)), m.id
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    assert compiled.getvalue() == (po.with_suffix(".mo")).read_bytes(), \
        "labkit.mo is older than labkit.po: run python -m labkit.i18n compile"


def test_a_kernel_started_with_labkit_lang_speaks_chinese():
    code = ("from labkit.checks import check_int\n"
            "try:\n    check_int('batch_size', 0, minimum=1)\nexcept ValueError as e:\n    print(e)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "LABKIT_LANG": "zh"}).stdout
    assert "batch_size 必须是" in out


def test_the_panel_the_plots_and_the_divergence_message_speak_chinese():
    import warnings

    import torch

    import labkit as lk
    from labkit.plots import figure_dict

    i18n.set_language("zh")
    data = lk.data.synthetic_regression(n=64, batch_size=16, seed=0)
    trainer = lk.Trainer(lk.models.MLP(1, [4], 1), loss="mse", optimizer="sgd", lr=0.01)
    panel = lk.ControlPanel(trainer, data, epochs=1, mode="headless")
    assert [b.description for b in (panel.train_button, panel.stop_button, panel.reset_button, panel.clear_button)] \
        == ["训练", "停止", "重置", "清除运行"]
    assert "就绪" in panel.status.value and panel.lr.description == "学习率"
    panel.train()
    assert "完成" in panel.status.value
    legend = {t["name"] for t in figure_dict(trainer.history)["data"]}
    assert "训练损失（每步）" in legend and "验证损失" in legend
    diverging = lk.Trainer(torch.nn.Linear(1, 1), loss="mse", optimizer="sgd", lr=1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diverging.fit(data, epochs=3)
    assert diverging.stop_reason.startswith("训练在第") and "请尝试更小的学习率" in diverging.stop_reason
    assert diverging.diverged and not trainer.diverged
    pg = lk.Playground(dataset="circles")
    assert "测试准确率" in pg.figure().layout.title.text
