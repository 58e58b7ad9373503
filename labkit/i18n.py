"""The language of what a learner reads: panel controls, status lines, plot titles, error messages.

English is the default. Chinese (Simplified) is chosen by, in this order:

    lk.set_language("zh")            # in a notebook
    LABKIT_LANG=zh                   # in the environment (also reaches papermill kernels)
    LANG=zh_CN.UTF-8                 # the notebook server's locale

Messages go through the standard gettext machinery: the code marks a string with `_()` and the
catalog `labkit/locale/<lang>/LC_MESSAGES/labkit.po` (compiled to `labkit.mo`) holds its
translation. A string without a translation is shown in English.

The catalog is kept with Babel's standard commands (JupyterLab already depends on Babel):

    pybabel extract -k _ --no-location -o labkit/locale/labkit.pot --project labkit labkit/
    pybabel update -i labkit/locale/labkit.pot -d labkit/locale -D labkit     # new strings into each .po
    python -m labkit.i18n compile                                              # .po -> .mo

and tests/test_i18n.py fails while a marked string has no translation or a .mo is out of date.
"""
from __future__ import annotations

import gettext
import os
import sys
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "labkit"
LANGUAGES = {"en": "English", "zh": "简体中文"}
_ALIASES = {"zh": "zh", "zh_cn": "zh", "zh-cn": "zh", "zh_hans": "zh", "zh-hans": "zh", "chinese": "zh",
            "en": "en", "en_us": "en", "en-us": "en", "en_gb": "en", "english": "en", "c": "en", "posix": "en"}
_chosen: str | None = None
_cache: dict[str, gettext.NullTranslations] = {}


def _normalise(value: str, source: str) -> str:
    key = str(value).strip().split(".")[0].lower()          # "zh_CN.UTF-8" -> "zh_cn"
    if key in _ALIASES:
        return _ALIASES[key]
    if key.startswith("zh"):
        return "zh"
    if key.startswith("en"):
        return "en"
    raise ValueError(f"{source} must be one of {sorted(LANGUAGES)} or 'auto' (e.g. 'zh' for 简体中文), got {value!r}")


def set_language(language: str | None) -> str:
    """Choose the language of labkit's messages for this process: "en", "zh", or "auto" (also None)
    to follow LABKIT_LANG / the locale. Widgets and plots made after the call use it. Each notebook
    of the course calls it once: "auto" in the English edition, "zh" in the Chinese one."""
    global _chosen
    if language is not None and not isinstance(language, str):
        raise TypeError(f"language must be a string such as 'zh', 'en' or 'auto', got "
                        f"{type(language).__name__} {language!r}")
    auto = language is None or language.strip().lower() == "auto"
    _chosen = None if auto else _normalise(language, "language")
    return get_language()


def get_language() -> str:
    """The language in force: "en" or "zh"."""
    if _chosen is not None:
        return _chosen
    env = os.environ.get("LABKIT_LANG", "").strip()
    if env:
        try:
            return _normalise(env, "LABKIT_LANG")
        except ValueError as e:
            print(f"labkit: {e}; using English", file=sys.stderr)
            return "en"
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def _translations(language: str) -> gettext.NullTranslations:
    if language not in _cache:
        _cache[language] = gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[language],
                                               fallback=True)
    return _cache[language]


def _(message: str) -> str:
    """`message` in the language in force (English when there is no translation)."""
    return _translations(get_language()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return _translations(get_language()).ngettext(singular, plural, n)


def compile_catalogs() -> list[Path]:
    """Rebuild every labkit.mo from its labkit.po (needs Babel, which JupyterLab brings)."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    written = []
    for po in sorted(LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        with po.open("rb") as f:
            catalog = read_po(f)
        mo = po.with_suffix(".mo")
        with mo.open("wb") as f:
            write_mo(f, catalog)
        written.append(mo)
    _cache.clear()
    return written


if __name__ == "__main__":
    if sys.argv[1:] != ["compile"]:
        sys.exit("usage: python -m labkit.i18n compile")
    for path in compile_catalogs():
        print(f"wrote {path}")
