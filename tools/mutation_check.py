#!/usr/bin/env python
"""Plant known bugs one at a time in a temporary copy of the project and check that the test suite
catches each: prints a table (bug, tests that failed, seconds). A developer tool, not part of
``make test``; run it after changing the engine, the data pipeline or their tests.

    python tools/mutation_check.py              # every bug (about 5 minutes on 2 cores)
    python tools/mutation_check.py --only 2 6a  # some of them
    python tools/mutation_check.py --list

The copy holds the tracked files and the built extension (vidpool/_C*.so: build it first, e.g. with
``make install``); tests run there with PYTHONPATH pointing at the copy, so subprocesses (train_net.py,
torchrun) import the mutated package too. The unmutated copy is checked first: every selected test
must pass there, or a failure would prove nothing. Exit status 1 when a bug goes uncaught.
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, NamedTuple, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Mutation(NamedTuple):
    key: str
    bug: str
    file: str
    edits: Tuple[Tuple[str, str], ...]  # (exact text, replacement), each must occur once
    tests: Tuple[str, ...]  # pytest node ids or "-k" selections as "file::-k expr"


MUTATIONS: List[Mutation] = [
    Mutation("1", "resume restores neither model nor optimizer", "vidpool/engine/trainer.py",
             (('        ckpt.unwrap(model).load_state_dict(state["model"])\n        optimizer.load_state_dict(state["optimizer"])\n',
               ""),),
             ("tests/engine/test_train.py::test_killed_and_resumed_run_equals_an_uninterrupted_one",)),
    Mutation("2", "LR logged but every iteration runs at the epoch-0 LR", "vidpool/engine/trainer.py",
             (("set_lr(optimizer, lr_at(solver, epoch + i / max(n, 1)))", "set_lr(optimizer, lr_at(solver, 0))"),),
             ("tests/engine/test_observed.py::-k lr or optimizer_holds or long_cycle",)),
    Mutation("3", "multigrid shapes scheduled but never given to the loader", "vidpool/engine/trainer.py",
             (("        loader.batch_sampler.set_cycle(cycle)\n", ""),
              ("        loader.batch_sampler.set_shape(shape, per_process)\n", "        pass\n")),
             ("tests/engine/test_observed.py::-k long_cycle or short_cycle",)),
    Mutation("4", "checkpoint written straight to its final path", "vidpool/engine/checkpoint.py",
             (('    tmp = f"{path}.tmp{os.getpid()}"\n', '    tmp = path\n'),
              ("        with contextlib.suppress(OSError):\n            os.remove(tmp)\n", "        pass\n")),
             ("tests/engine/test_observed.py::-k checkpoint",)),
    Mutation("5a", "DDP validation metrics from local counts", "vidpool/engine/trainer.py",
             (('    stats = meter.reduce(lambda v: dist.all_reduce_sum(v, device))\n    stats["unreadable"]',
               '    stats = meter.reduce(lambda v: v)\n    stats["unreadable"]'),),
             ("tests/engine/test_train.py::test_torchrun_run_matches_a_single_process_on_its_checkpoint",)),
    Mutation("5b", "tester does not merge views across ranks", "vidpool/engine/tester.py",
             (("        for part in parts[1:]:  # parts[0] is rank 0's own\n            agg.merge(part)\n", ""),),
             ("tests/engine/test_train.py::test_torchrun_run_matches_a_single_process_on_its_checkpoint",)),
    Mutation("6a", "training crop always centred", "vidpool/data/transforms.py",
             (("top, left = rng.randint(0, h - shape.crop_size), rng.randint(0, w - shape.crop_size)",
               "top, left = (h - shape.crop_size) // 2, (w - shape.crop_size) // 2"),),
             ("tests/data/test_observed_clips.py::test_training_crops_scales_and_flips_cover_their_ranges",)),
    Mutation("6b", "scale jitter ignored (always the smallest scale)", "vidpool/data/transforms.py",
             (("    return max(rng.randint(lo, hi), shape.crop_size)", "    return max(lo, shape.crop_size)"),),
             ("tests/data/test_observed_clips.py::test_training_crops_scales_and_flips_cover_their_ranges",)),
    Mutation("6c", "horizontal flips never happen", "vidpool/data/transforms.py",
             (("if flip and rng.random() < 0.5:", "if flip and rng.random() < 0.0:"),),
             ("tests/data/test_observed_clips.py::test_training_crops_scales_and_flips_cover_their_ranges",)),
    Mutation("7", "SR block at 'mid' behaves as 'end'", "vidpool/models/srtg.py",
             (('        if self.place == "mid":\n', '        if False:\n'),
              ('        if self.place == "end":\n', '        if self.place in ("mid", "end"):\n')),
             ("tests/models/test_srtg.py",)),
    Mutation("8", "half-type SoftPool is a max pool in disguise", "vidpool/ops/softpool.py",
             (("        y = torch.ops.vidpool.soft_pool(xb, list(k), list(s), list(p), bool(ceil_mode))\n",
               "        y = torch.ops.vidpool.soft_pool(xb, list(k), list(s), list(p), bool(ceil_mode))\n"
               "        if xb.dtype in (torch.float16, torch.bfloat16):\n"
               "            y = getattr(torch.nn.functional, f'max_pool{dim}d')(xb, k, s, p, ceil_mode=bool(ceil_mode))\n"),),
             ("tests/ops/test_softpool_values.py::-k half", "tests/ops/test_softpool_grad.py::-k half")),
]


def copy_project(dest: str) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    built = [os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "vidpool", "_C*.so"))]
    if not built:
        sys.exit("no built extension (vidpool/_C*.so): run `make install` first")
    for rel in [f for f in files.split("\0") if f] + built:
        src = os.path.join(ROOT, rel)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, rel))


def pytest_args(selection: str) -> List[str]:
    path, _, rest = selection.partition("::")
    if rest.startswith("-k "):
        return [path, "-k", rest[3:]]
    return [selection]


def run_tests(copy: str, selections, env) -> Tuple[bool, List[str], float]:
    """One pytest run per selection (a -k expression applies to a whole command line)."""
    ok, failed, start = True, [], time.time()
    for sel in selections:
        args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", "-rf"]
        done = subprocess.run(args + pytest_args(sel), cwd=copy, env=env, capture_output=True, text=True)
        ok = ok and done.returncode == 0
        failed += re.findall(r"^FAILED (\S+)", done.stdout, re.M)
        if done.returncode not in (0, 1):  # 1: tests failed; anything else: nothing ran as asked
            failed.append(f"(pytest exit {done.returncode} on {sel})")
    return ok, sorted(set(failed)), time.time() - start


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", help="bug keys to plant (default: all)")
    ap.add_argument("--list", action="store_true", help="list the bugs and exit")
    args = ap.parse_args(argv)
    if args.list:
        for m in MUTATIONS:
            print(f"{m.key:3s} {m.bug}  ({m.file})")
        return 0
    chosen = [m for m in MUTATIONS if not args.only or m.key in args.only]
    if args.only and len(chosen) != len(args.only):
        ap.error(f"unknown bug key(s); choose from {[m.key for m in MUTATIONS]}")
    with tempfile.TemporaryDirectory(prefix="vidpool-mutants-") as tmp:
        copy = os.path.join(tmp, "project")
        copy_project(copy)
        env = dict(os.environ, PYTHONPATH=copy)
        where = subprocess.run([sys.executable, "-c", "import vidpool; print(vidpool.__file__)"], cwd=tmp, env=env,
                               capture_output=True, text=True).stdout.strip()
        if not where.startswith(copy):
            sys.exit(f"the copy is not what Python imports (vidpool from {where})")
        selections = sorted({s for m in chosen for s in m.tests})
        ok, failed, seconds = run_tests(copy, selections, env)
        print(f"unmutated copy: {'all selected tests pass' if ok else 'FAILURES ' + ', '.join(failed)} ({seconds:.0f} s)",
              flush=True)
        if not ok:
            return 1
        rows, missed = [], 0
        for m in chosen:
            path = os.path.join(copy, m.file)
            original = open(path).read()
            text = original
            for old, new in m.edits:
                if text.count(old) != 1:
                    sys.exit(f"bug {m.key}: the text to replace occurs {text.count(old)} times in {m.file}; "
                             "update MUTATIONS for the current code")
                text = text.replace(old, new)
            with open(path, "w") as f:
                f.write(text)
            try:
                ok, failed, seconds = run_tests(copy, m.tests, env)
            finally:
                with open(path, "w") as f:
                    f.write(original)
            missed += ok
            caught = "NOT CAUGHT" if ok else "<br>".join(t.split("/")[-1] for t in failed) or "(error, see pytest)"
            rows.append((m.key, m.bug, caught, f"{seconds:.0f}"))
            print(f"bug {m.key}: {'not caught' if ok else 'caught'} ({seconds:.0f} s)", flush=True)
    print("\n| # | planted bug | test(s) that failed | seconds |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
