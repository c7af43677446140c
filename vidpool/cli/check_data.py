"""Pre-flight check of a dataset split before a long run: opens every video of the split (its header
and first frame, in sandboxed worker processes: a decoder that crashes or hangs costs one file, not
the scan) and reports missing, unreadable, crashed, too-short videos and the frame-rate and
resolution histograms; writes a cleaned copy of the annotation files without the unusable videos.

    vidpool check-data --cfg configs/hacs/r3d50_softpool.yaml --split train --workers 16
    vidpool check-data --cfg configs/kinetics700/r3d50_ft.yaml --split val DATA.PATH_PREFIX /data/k700

KEY VALUE pairs override the config (as in train_net.py). Writes into --out (default
OUTPUT_DIR/dataset_check_SPLIT): report.json (counts, histograms, every problem), problems.tsv
(path, status, reason) and the cleaned annotation files; the last lines printed say which overrides
make a run read them.
"""
import json
import logging
import os
from collections import Counter

from vidpool.cli._args import parse_with_config, parser
from vidpool.data.build import read_annotations
from vidpool.data.check import PROBLEMS, histograms, progress_printer, records_report, scan_videos, write_cleaned


def parse(argv):
    ap = parser("check-data", __doc__)
    ap.add_argument("--split", default="train", choices=["train", "val", "test"],
                    help="split to check (test: the TEST.SPLIT annotations of TEST.DATASET)")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1), help="checking processes")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds one file may take before it counts as hung")
    ap.add_argument("--out", help="output folder (default OUTPUT_DIR/dataset_check_SPLIT)")
    return parse_with_config(ap, argv)


def main(argv=None):
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S")
    args, cfg = parse(argv)
    ann = read_annotations(cfg, args.split, keep_missing=True)
    out = args.out or os.path.join(cfg.OUTPUT_DIR, f"dataset_check_{args.split}")
    paths = list(dict.fromkeys(r.path for r in ann.records))
    print(f"{ann.report}\nchecking {len(paths)} video files of {len(ann.records)} records with {args.workers} workers")
    step, close = progress_printer(len(paths))
    try:
        results = scan_videos(paths, args.workers, cfg.DATA.DECODER, args.timeout, step)
    finally:
        close()
    by_path = dict(zip(paths, results))
    d = cfg.DATA
    rows = records_report(ann.records, by_path, d.NUM_FRAMES * d.SAMPLING_RATE / d.TARGET_FPS)

    files = Counter(r["status"] for r in results)
    records = Counter(r["status"] for r in rows)
    hist = histograms(results, paths)
    print(f"\n{len(ann.records)} records, {len(paths)} files")
    for status in ("ok", "too_short") + PROBLEMS:
        print(f"  {status:10s} {records.get(status, 0):8d} records  {files.get(status, 0):8d} files")
    print("frame rates (fps: files): " + ", ".join(f"{k}: {v}" for k, v in hist["fps"].items()))
    print("containers (extension: files): " + ", ".join(f"{k}: {v}" for k, v in hist["extension"].items()))
    print("resolutions (most common): " + ", ".join(f"{k}: {v}" for k, v in list(hist["resolution"].items())[:8]))
    problems = [r for r in rows if r["status"] != "ok"]
    for r in problems[:10]:
        print(f"  {r['status']}: {r['path']} ({r.get('reason', '')})")
    if len(problems) > 10:
        print(f"  ... {len(problems) - 10} more in problems.tsv")

    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump({"split": args.split, "annotation_split": ann.source, "dataset": ann.dataset,
                   "records": dict(records), "files": dict(files), "histograms": hist,
                   "problems": problems}, f, indent=1)
    with open(os.path.join(out, "problems.tsv"), "w") as f:
        seen = set()
        for r in problems:
            if r["path"] not in seen:
                seen.add(r["path"])
                f.write(f"{r['path']}\t{r['status']}\t{r.get('reason', '')}\n")
    bad_lines = [r["line"] for r in rows if r["status"] in PROBLEMS]
    if ann.files[0].endswith(".json"):
        print(f"\nwrote {out}/report.json and problems.tsv; JSON annotations are not rewritten: "
              "leave the listed videos out by hand")
        return 0
    written = write_cleaned(ann.files, out, bad_lines)
    root = d.PATH_PREFIX or d.PATH_TO_DATA_DIR
    print(f"\nwrote {out}/report.json, problems.tsv and the cleaned annotations ({os.path.basename(written[0])}: "
          f"{len(set(bad_lines))} records left out). Train on them with:\n"
          f"  DATA.PATH_TO_DATA_DIR {out} DATA.PATH_PREFIX {os.path.abspath(root)}")
    return 0
