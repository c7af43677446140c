"""Pictures of what vidpool does: `vidpool visualize pooling|saliency|curves ...`.

    vidpool visualize pooling tests/assets/videos/arm_wrestling.mp4 --short-side 180 --frames 32
    vidpool visualize saliency --cfg CFG --weights A.pyth --weights B.pyth VIDEO
    vidpool visualize curves output/demo_r3d10_max output/demo_r3d10_softpool --out curves.png

pooling: one video (or image) downsampled by several pooling methods side by side; saliency:
Grad-CAM maps of one or two trained models on a video; curves: loss and accuracy of runs over
epochs or time. `vidpool visualize KIND --help` describes each.
"""
import sys

KINDS = {"pooling": "viz_pooling", "saliency": "viz_saliency", "curves": "viz_curves"}


def main(argv=None):
    import importlib

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    if argv[0] not in KINDS:
        print(f"vidpool visualize: error: unknown kind {argv[0]!r}; choose one of {', '.join(KINDS)}",
              file=sys.stderr)
        return 2
    return importlib.import_module(f"vidpool.cli.{KINDS[argv[0]]}").main(argv[1:])
