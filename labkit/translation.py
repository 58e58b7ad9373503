"""Keep a translated edition of the course in step with the English one.

A translated notebook (e.g. ``notebooks/zh/01_linear_regression.ipynb``) has the same cells as its
English original, in the same order. Each translated cell records which English text it translates:
``cell.metadata["labkit"]["translates"]`` is the SHA-256 of the English cell's source. Code cells hold
the same code; only comments and string literals (plot titles, printed messages) may be translated.

    python -m labkit.translation notebooks notebooks/zh          # what needs (re-)translation
    python -m labkit.translation notebooks notebooks/zh --new    # also start missing notebooks/cells

`check(english, translated)` lists every problem: a cell added, removed or moved; an English cell
edited since its translation (stale); code that differs beyond comments and strings; a tag
(``parameters``, ``solution``) or collapsed state that differs.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import io
import json
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

KEY = "labkit"                      # cell.metadata[KEY]["translates"] = sha256 of the English source
PENDING = "needs translation"       # cell.metadata[KEY]["status"] of a cell copied but not yet translated


def source_hash(source) -> str:
    """SHA-256 of a cell's source (a string or nbformat's list of lines), line endings normalised."""
    text = "".join(source) if isinstance(source, list) else source
    return hashlib.sha256(text.replace("\r\n", "\n").strip().encode()).hexdigest()


def code_skeleton(source) -> list[tuple[int, str]] | str:
    """The code's tokens with comments dropped and string literals blanked: what must not differ
    between a code cell and its translation. Source that Python cannot tokenize (IPython magics)
    falls back to its lines without comments."""
    text = "".join(source) if isinstance(source, list) else source
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENDMARKER}
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    try:
        out, depth, names = [], 0, []
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == fstring_start:                 # Python >= 3.12 splits f-strings up
                depth += 1
                continue
            if depth:                                     # inside an f-string: keep only the names used
                if tok.type == tokenize.NAME:
                    names.append(tok.string)
                elif tok.type == fstring_end:
                    depth -= 1
                    if not depth:
                        out += [(tokenize.STRING, "f''")] + [(tokenize.NAME, n) for n in sorted(names)]
                        names = []
                continue
            if tok.type in skip:
                continue
            if tok.type == tokenize.STRING:               # Python 3.11: one token, names read from it
                kind = _string_kind(tok.string)
                out.append((tok.type, kind))
                if kind == "f''":
                    out += [(tokenize.NAME, n) for n in _fstring_names(tok.string)]
                continue
            out.append((tok.type, tok.string))
        return out
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return "\n".join(line.split("#")[0].rstrip() for line in text.splitlines() if line.split("#")[0].strip())


def _string_kind(literal: str) -> str:
    """A string literal reduced to its prefix: 'f' for f-strings, '' otherwise."""
    prefix = ""
    for ch in literal:
        if ch in "\"'":
            break
        prefix += ch
    return "f''" if "f" in prefix.lower() else "''"


def _fstring_names(literal: str) -> list[str]:
    """The names used inside an f-string's replacement fields, sorted (a translation may move them)."""
    names = []
    for field in re.findall(r"(?<!\{)\{([^{}]+)\}", literal):
        expr = field.split("!")[0].split(":")[0]
        names += re.findall(r"[A-Za-z_][A-Za-z_0-9]*", expr)
    return sorted(names)


@dataclass
class Problem:
    index: int          # cell index in the English notebook (-1: the notebook as a whole)
    kind: str           # "missing", "structure", "stale", "untranslated", "code", "metadata"
    message: str

    def __str__(self) -> str:
        where = "notebook" if self.index < 0 else f"cell {self.index}"
        return f"{where}: {self.kind}: {self.message}"


def _tags(cell) -> list[str]:
    return sorted(cell.get("metadata", {}).get("tags", []))


def _hidden(cell) -> bool:
    return bool(cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"))


def check(english: dict | str | Path, translated: dict | str | Path) -> list[Problem]:
    """Every way `translated` is out of step with `english` (notebooks as dicts or paths)."""
    en, tr = _load(english), _load(translated)
    if tr is None:
        return [Problem(-1, "missing", f"no translation of {english}")]
    en_cells, tr_cells = en["cells"], tr["cells"]
    if [c["cell_type"] for c in en_cells] != [c["cell_type"] for c in tr_cells]:
        return [Problem(-1, "structure",
                        f"the English notebook has {len(en_cells)} cells, the translation {len(tr_cells)} "
                        "(or their types differ): cells were added, removed or moved; run "
                        "`python -m labkit.translation EN_DIR TR_DIR --new` to bring the new cells over")]
    problems = []
    for i, (e, t) in enumerate(zip(en_cells, tr_cells)):
        meta = t.get("metadata", {}).get(KEY, {})
        if meta.get("status") == PENDING:
            problems.append(Problem(i, "untranslated", "copied from English, not yet translated"))
        elif meta.get("translates") != source_hash(e["source"]):
            what = "has no record of the English text it translates" if "translates" not in meta else \
                "the English cell changed after it was translated"
            problems.append(Problem(i, "stale", what))
        if e["cell_type"] == "code" and code_skeleton(e["source"]) != code_skeleton(t["source"]):
            problems.append(Problem(i, "code", "the code differs from the English cell beyond comments "
                                               "and string literals"))
        if _tags(e) != _tags(t) or _hidden(e) != _hidden(t):
            problems.append(Problem(i, "metadata", f"tags/collapsed state {_tags(t)}/{_hidden(t)} "
                                                   f"differ from the English {_tags(e)}/{_hidden(e)}"))
    return problems


def mark_translated(cell: dict, english_cell: dict) -> dict:
    """Record in `cell` that it translates `english_cell` as it is now."""
    meta = cell.setdefault("metadata", {}).setdefault(KEY, {})
    meta.pop("status", None)
    meta["translates"] = source_hash(english_cell["source"])
    return cell


def start_translation(english: dict, translated: dict | None = None) -> dict:
    """A translated notebook with the English structure: cells already translated (matched by their
    English hash, or kept in place when the structure is unchanged) stay; new or moved English cells
    are copied over and marked as needing translation."""
    out = copy.deepcopy(english)
    done = {}
    if translated is not None:
        for cell in translated["cells"]:
            sha = cell.get("metadata", {}).get(KEY, {}).get("translates")
            if sha and cell.get("metadata", {}).get(KEY, {}).get("status") != PENDING:
                done.setdefault(sha, cell)
    same_shape = translated is not None and \
        [c["cell_type"] for c in english["cells"]] == [c["cell_type"] for c in translated["cells"]]
    for i, cell in enumerate(out["cells"]):
        sha = source_hash(cell["source"])
        if sha in done:
            kept = copy.deepcopy(done[sha])
            kept["id"] = cell.get("id", kept.get("id"))
            out["cells"][i] = kept
        elif same_shape and translated["cells"][i].get("metadata", {}).get(KEY, {}).get("status") != PENDING:
            # edited in English since: keep the old translation to revise, flagged as stale by check()
            kept = copy.deepcopy(translated["cells"][i])
            kept["id"] = cell.get("id", kept.get("id"))
            out["cells"][i] = kept
        else:
            cell.setdefault("metadata", {})[KEY] = {"translates": sha, "status": PENDING}
    return out


def _load(nb) -> dict | None:
    if isinstance(nb, dict):
        return nb
    path = Path(nb)
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def save(nb: dict, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def report(en_dir, tr_dir, start_new: bool = False, only=()) -> dict[str, list[Problem]]:
    """{notebook name: problems} for every NN_*.ipynb of `en_dir` (or those whose name starts with one of
    `only`); with start_new, missing notebooks and cells are created in `tr_dir` from the English
    (marked as needing translation)."""
    en_dir, tr_dir = Path(en_dir), Path(tr_dir)
    result = {}
    for en_path in sorted(en_dir.glob("[0-9][0-9]_*.ipynb")):
        if only and not en_path.name.startswith(tuple(only)):
            continue
        tr_path = tr_dir / en_path.name
        if start_new:
            problems = check(en_path, tr_path)
            if any(p.kind in ("missing", "structure") for p in problems):
                save(start_translation(_load(en_path), _load(tr_path)), tr_path)
        result[en_path.name] = check(en_path, tr_path)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.translation",
                                     description="List the cells of a translated course that need (re-)translation.")
    parser.add_argument("english", help="folder of the English notebooks, e.g. notebooks")
    parser.add_argument("translated", help="folder of the translation, e.g. notebooks/zh")
    parser.add_argument("--new", action="store_true",
                        help="create missing notebooks and bring new English cells over, marked untranslated")
    parser.add_argument("--only", nargs="+", default=(), metavar="NN",
                        help="only these notebooks (name prefixes such as 01 or 11_deployment)")
    args = parser.parse_args(argv)
    result = report(args.english, args.translated, start_new=args.new, only=args.only)
    bad = 0
    for name, problems in result.items():
        if problems:
            bad += 1
            print(f"{name}: {len(problems)} to do")
            for p in problems:
                print(f"  {p}")
        else:
            print(f"{name}: in step")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
