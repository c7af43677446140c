"""The repository stands alone: no tracked file reads or cites a path outside it."""
import os
import re
import subprocess

import pytest

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
# names of files that exist only beside a development checkout, never in a user's clone
# (built from pieces so that this file does not match itself)
FOREIGN = ["PAPER" + "_NOTES", "ARCHITECTURE" + ".md", "../" + "shared", '"shared", ' + '"data"', '/ "shared"',
           "DEVELOPERS" + ".md"]
RELATIVE = re.compile(r"(?<![\w.])((?:\.\./)+[\w.-][\w./-]*)")


def tracked_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True).stdout
        return [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):  # an exported tree without .git
        return [os.path.relpath(os.path.join(d, f), ROOT) for d, dirs, files in os.walk(ROOT)
                for f in files if not any(p.startswith(".") or p in ("build", "data", "output") for p in
                                          os.path.relpath(d, ROOT).split(os.sep) if p != ".")]


def text_files():
    for rel in tracked_files():
        path = os.path.join(ROOT, rel)
        if not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        if b"\0" in data[:4096]:
            continue
        yield rel, data.decode("utf-8", "replace")


def outside(base, rel):
    return not os.path.realpath(os.path.join(base, rel)).startswith(ROOT + os.sep)


def test_files_are_found():
    files = dict(text_files())
    assert "README.md" in files and "tests/test_repository.py" in files and len(files) > 100


def outside_paths(rel, text):
    """'file:line: what' for each name or relative path in ``text`` (the file ``rel``) that points outside."""
    problems = []
    for n, line in enumerate(text.splitlines(), 1):
        problems += [f"{rel}:{n}: {name}" for name in FOREIGN if name in line]
        for m in RELATIVE.finditer(line):
            # a relative path resolves from the file's folder (links) or from the repository root (commands)
            if outside(os.path.dirname(os.path.join(ROOT, rel)), m.group(1)) and outside(ROOT, m.group(1)):
                problems.append(f"{rel}:{n}: {m.group(1)}")
    return problems


def test_no_tracked_file_refers_outside_the_repository():
    # this file is the one exception: its examples point outside on purpose
    problems = [p for rel, text in text_files() if rel != "tests/test_repository.py" for p in outside_paths(rel, text)]
    assert not problems, "paths outside the repository:\n" + "\n".join(problems)


@pytest.mark.parametrize("line,bad", [("see ../shared/data/videos", True), ("[x](../README.md)", False),
                                      ("python tools/a.py ../../elsewhere/file", True), ("a/../b", False),
                                      ("[y](../../outside/x.py)", True), ("the " + "PAPER" + "_NOTES say", True)])
def test_the_check_catches_outside_paths(line, bad):
    """The check itself, on lines written for it, as if in a file one folder down (docs/)."""
    assert bool(outside_paths("docs/page.md", line)) == bad


def test_models_do_not_import_weights():
    """vidpool.weights builds on vidpool.models; the reverse import would make a cycle."""
    problems = []
    for d, _, files in os.walk(os.path.join(ROOT, "vidpool", "models")):
        for f in files:
            if f.endswith(".py"):
                text = open(os.path.join(d, f), encoding="utf-8").read()
                if re.search(r"^\s*(from vidpool\.weights|from \.\.weights|import vidpool\.weights)", text, re.M):
                    problems.append(f)
    assert not problems
