"""The docs cannot go stale silently: every config key, tool, subcommand, flag, file path and
relative link that the README, docs/ and configs/README.md name exists."""
import contextlib
import io
import os
import re

import pytest

from vidpool.cli import COMMANDS
from vidpool.config import _all_keys, get_cfg

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
DOCS = ["README.md", "configs/README.md"] + sorted(
    os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
KEYS = set(_all_keys(get_cfg()))
SECTIONS = {k.split(".")[0] for k in KEYS}
LINK = re.compile(r"\]\(([^)\s]+)\)")
KEY = re.compile(r"(?<![\w./-])((?:[A-Z][A-Z0-9_]*)\.[A-Z][A-Z0-9_]*\*?)(?![\w(])")
PATH = re.compile(r"(?<![\w./-])((?:configs|vidpool|tools|tests|docs|csrc)/[\w./*-]*[\w/*])")
# a command as it is typed: in backticks, at the start of a line of a code block, or after "-m "
COMMAND = re.compile(r"(?:^|`|\$ |-m )vidpool ([a-z][a-z-]*)((?: [^`|\n]*)?)", re.M)
PLACEHOLDER = re.compile(r"[<*{]|NAME|DIR|MODEL|FILE")


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def anchors(rel):
    """GitHub's anchors of a markdown file's headings, and its explicit <a id> ones."""
    found = set(re.findall(r'<a id="([^"]+)"', read(rel)))
    for line in read(rel).splitlines():
        if line.startswith("#"):
            text = re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower())
            found.add(text.replace(" ", "-"))
    return found


def subcommand_help(name):
    from vidpool.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        main([name, "--help"])
    return out.getvalue()


def test_the_docs_exist_and_the_readme_is_short():
    assert len(read("README.md").splitlines()) <= 250
    for page in ("install", "data", "training", "multigrid", "weights", "models", "operator", "experiments",
                 "visualizations", "benchmarks", "development"):
        text = read(f"docs/{page}.md")
        assert "After this page you can" in text.split("\n\n")[1], page


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_resolve(doc):
    problems = []
    for target in LINK.findall(read(doc)):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = os.path.normpath(os.path.join(os.path.dirname(doc), path)) if path else doc
        if not os.path.exists(os.path.join(ROOT, file)):
            problems.append(f"{target}: no such file")
        elif anchor and file.endswith(".md") and anchor not in anchors(file):
            problems.append(f"{target}: no such heading in {file}")
    assert not problems, f"{doc}: " + "; ".join(problems)


@pytest.mark.parametrize("doc", DOCS)
def test_config_keys_exist(doc):
    problems = set()
    for key in KEY.findall(read(doc)):
        if key.split(".")[0] not in SECTIONS:
            continue  # not one of our sections (e.g. a file name such as README.md)
        if key.endswith("*"):
            ok = any(k.startswith(key[:-1]) for k in KEYS)
        else:
            ok = key in KEYS
        if not ok:
            problems.add(key)
    assert not problems, f"{doc} names config keys that do not exist: {sorted(problems)}"


@pytest.mark.parametrize("doc", DOCS)
def test_paths_exist(doc):
    problems = set()
    for path in PATH.findall(read(doc)):
        if PLACEHOLDER.search(path) or path.startswith("vidpool/_"):
            continue
        candidates = [os.path.join(ROOT, path), os.path.join(ROOT, os.path.dirname(doc), path)]
        if not any(os.path.exists(c) for c in candidates):
            problems.add(path)
    assert not problems, f"{doc} names paths that do not exist: {sorted(problems)}"


@pytest.mark.parametrize("doc", DOCS)
def test_subcommands_and_their_flags_exist(doc):
    problems, helps = [], {}
    for name, rest in COMMAND.findall(read(doc)):
        if name not in COMMANDS:
            problems.append(f"vidpool {name}: no such subcommand")
            continue
        words = rest.split()
        if name == "visualize" and words and not words[0].startswith("-"):
            kind = words[0]
            if kind not in ("pooling", "saliency", "curves"):
                problems.append(f"vidpool visualize {kind}")
                continue
            helps.setdefault((name, kind), subcommand_help_kind(kind))
            text = helps[(name, kind)]
        else:
            text = helps.setdefault(name, subcommand_help(name))
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest):
            if flag not in text and flag not in ("--help", "--debug"):
                problems.append(f"vidpool {name} {flag}")
    assert not problems, f"{doc}: " + "; ".join(problems)


def subcommand_help_kind(kind):
    from vidpool.cli import visualize

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        visualize.main([kind, "--help"])
    return out.getvalue()


def test_every_config_is_in_the_configs_table():
    table = read("configs/README.md")
    for d in ("bench", "demo", "hacs", "kinetics700", "ucf101"):
        for f in os.listdir(os.path.join(ROOT, "configs", d)):
            if f.endswith(".yaml") and not f.startswith("_"):
                assert f"[{d}/{f}]({d}/{f})" in table, f"configs/{d}/{f} is missing from configs/README.md"


def test_the_check_catches_stale_names():
    """The patterns themselves, on text written for them."""
    assert KEY.findall("set `TRAIN.BATCHSIZE 8`, MODEL.SRTG_* and README.md") == [
        "TRAIN.BATCHSIZE", "MODEL.SRTG_*", "README.md".upper()][:2]
    assert "TRAIN.BATCHSIZE" not in KEYS and "TRAIN.BATCH_SIZE" in KEYS
    assert PATH.findall("run `tools/no_such.py` on configs/hacs/r3d50.yaml.") == ["tools/no_such.py",
                                                                              "configs/hacs/r3d50.yaml"]
    assert COMMAND.findall("`vidpool trian --cfg x`") == [("trian", " --cfg x")]
    assert COMMAND.findall("vidpool reads videos") == [("reads", " videos")]  # a line start counts
    assert COMMAND.findall("so vidpool reads videos") == []
