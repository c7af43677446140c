#!/usr/bin/env python
"""Export every registered model with SoftPool (pool=softpool, head_pool=softpool, random weights) in
one format, run each file on inputs of two batch sizes and print the largest logit difference from
PyTorch as a table (and --json FILE). Models the exporter cannot handle are listed with the error.

    python tools/check_export.py --format onnx --json output/check_export_onnx.json
    python tools/check_export.py --format exported --models r3d_18 i3d
"""
import argparse
import json
import os
import sys
import tempfile
import time
import warnings

import torch

from vidpool.deploy.export import FORMATS, check_export, export_model
from vidpool.models import create_model, list_models


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--format", default="onnx", choices=FORMATS)
    ap.add_argument("--models", nargs="*", help="model names (default: every registered model)")
    ap.add_argument("--shape", default="2,16,64,64", help="traced batch,frames,height,width (default 2,16,64,64)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    n, t, h, w = map(int, args.shape.split(","))
    rows = []
    print("| model | export s | max abs logit diff | relative | result |\n|---|---|---|---|---|", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models or list_models():
            torch.manual_seed(0)
            row = {"model": name}
            start = time.time()
            try:
                model = create_model(name, 10, pool="softpool", head_pool="softpool").eval()
                path = os.path.join(tmp, f"{name}.{args.format}")
                export_model(model, torch.randn(n, 3, t, h, w), args.format, path, "batch")
                row["export_s"] = round(time.time() - start, 1)
                row.update(check_export(model, path, args.format, [(n, 3, t, h, w), (n + 1, 3, t, h, w)]))
                row["ok"] = row["max_rel_diff"] <= 1e-4
                os.remove(path)
            except Exception as e:  # noqa: BLE001 - a model the exporter cannot handle is a row, not the end
                row.update(export_s=round(time.time() - start, 1), ok=False, error=f"{type(e).__name__}: {e}"[:300])
            rows.append(row)
            result = "ok" if row["ok"] else row.get("error", "difference above 1e-4")
            print(f"| {name} | {row['export_s']} | {row.get('max_abs_diff', float('nan')):.2e} | "
                  f"{row.get('max_rel_diff', float('nan')):.2e} | {result} |", flush=True)
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    bad = [r["model"] for r in rows if not r["ok"]]
    print(f"{len(rows) - len(bad)} of {len(rows)} models exported within 1e-4" + (f"; not: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
