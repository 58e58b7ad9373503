"""labkit.translation: a translated notebook is checked cell by cell against its English original."""
import copy
import json
from pathlib import Path

import pytest

from labkit import translation as tr

ROOT = Path(__file__).resolve().parents[1]


def _nb(*cells):
    return {"cells": [dict(cell_type=t, id=f"c{i}", metadata=m or {}, source=s, **({"outputs": [], "execution_count": None} if t == "code" else {}))
                      for i, (t, s, m) in enumerate(cells)], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


ENGLISH = _nb(("markdown", "# Linear regression\nWe fit a line.", None),
              ("code", 'lr = 0.1  # the step size\nprint(f"loss {loss:.3f} at step {step}")\nfig.update_layout(title="loss")', {"tags": ["parameters"]}),
              ("code", "# Solution to exercise 1\nx = lr * 2", {"tags": ["solution"], "jupyter": {"source_hidden": True}}))


def _translated():
    zh = tr.start_translation(ENGLISH)
    zh["cells"][0]["source"] = "# 线性回归\n我们拟合一条直线。"
    zh["cells"][1]["source"] = 'lr = 0.1  # 步长\nprint(f"第 {step} 步的损失 {loss:.3f}")\nfig.update_layout(title="损失")'
    zh["cells"][2]["source"] = "# Solution to exercise 1\nx = lr * 2"
    for cell, en in zip(zh["cells"], ENGLISH["cells"]):
        tr.mark_translated(cell, en)
    return zh


def test_a_faithful_translation_is_in_step():
    assert tr.check(ENGLISH, _translated()) == []


def test_new_translation_is_marked_untranslated():
    problems = tr.check(ENGLISH, tr.start_translation(ENGLISH))
    assert [p.kind for p in problems] == ["untranslated"] * 3


def test_an_english_edit_makes_the_translation_stale():
    en = copy.deepcopy(ENGLISH)
    en["cells"][0]["source"] = "# Linear regression\nWe fit a straight line."
    problems = tr.check(en, _translated())
    assert [(p.index, p.kind) for p in problems] == [(0, "stale")]


@pytest.mark.parametrize("code", [
    'lr = 0.2  # 步长\nprint(f"第 {step} 步的损失 {loss:.3f}")\nfig.update_layout(title="损失")',     # a value
    'lr = 0.1\nprint(f"第 {epoch} 步的损失 {loss:.3f}")\nfig.update_layout(title="损失")',           # an f-string name
    'lr = 0.1\nprint(f"第 {step} 步的损失 {loss:.3f}")\nfig.update_layout(name="损失")',             # a keyword
])
def test_code_must_stay_the_same_beyond_comments_and_strings(code):
    zh = _translated()
    zh["cells"][1]["source"] = code
    assert [p.kind for p in tr.check(ENGLISH, zh)] == ["code"]


def test_structure_and_tags_must_match():
    zh = _translated()
    del zh["cells"][2]
    assert [p.kind for p in tr.check(ENGLISH, zh)] == ["structure"]
    zh = _translated()
    zh["cells"][2]["metadata"]["jupyter"]["source_hidden"] = False
    assert [p.kind for p in tr.check(ENGLISH, zh)] == ["metadata"]


def test_start_translation_keeps_done_cells_and_brings_new_ones(tmp_path):
    en = copy.deepcopy(ENGLISH)
    en["cells"].insert(1, {"cell_type": "markdown", "id": "new", "metadata": {}, "source": "A new paragraph."})
    merged = tr.start_translation(en, _translated())
    assert merged["cells"][0]["source"].startswith("# 线性回归")
    assert [p.kind for p in tr.check(en, merged)] == ["untranslated"]
    (tmp_path / "en").mkdir()
    tr.save(en, tmp_path / "en" / "01_x.ipynb")
    assert tr.main([str(tmp_path / "en"), str(tmp_path / "zh")]) == 1           # missing
    tr.main([str(tmp_path / "en"), str(tmp_path / "zh"), "--new"])
    saved = json.loads((tmp_path / "zh" / "01_x.ipynb").read_text(encoding="utf-8"))
    assert len(saved["cells"]) == 4 and tr.check(en, saved)[0].kind == "untranslated"


def test_magics_fall_back_to_lines():
    assert tr.code_skeleton("%timeit f(x)  # time it") == tr.code_skeleton("%timeit f(x)  # 计时")


ENGLISH_NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("nb", ENGLISH_NOTEBOOKS, ids=lambda p: p.stem)
def test_the_chinese_edition_is_in_step(nb):
    """Every chapter exists in notebooks/zh/, cell for cell, each cell translating the current English
    text, with the same code. After an English edit: python -m labkit.translation notebooks notebooks/zh"""
    problems = tr.check(nb, ROOT / "notebooks" / "zh" / nb.name)
    assert not problems, f"notebooks/zh/{nb.name}: " + "; ".join(map(str, problems[:8])) + \
        (f" ... ({len(problems)} in all)" if len(problems) > 8 else "")


def test_the_glossary_lists_the_course_terms():
    text = (ROOT / "notebooks" / "zh" / "glossary.md").read_text(encoding="utf-8")
    for term in ("迁移学习", "循环神经网络", "注意力机制", "预训练", "微调", "学习率", "批量大小", "过拟合",
                 "正则化", "反向传播", "梯度下降", "动量", "交叉熵", "卷积", "池化"):
        assert f"| {term}" in text, term
