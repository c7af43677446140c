"""Grad-CAM maps of trained models on a video, overlaid on the frames (PNG and MP4).

    vidpool visualize saliency --cfg configs/demo/r3d10_softpool.yaml \\
        --weights output/demo_r3d10_max/checkpoints/checkpoint_epoch_00006.pyth \\
        --weights output/demo_r3d10_softpool/checkpoints/checkpoint_epoch_00006.pyth VIDEO [--class N]

The config gives the clip (DATA.NUM_FRAMES every DATA.SAMPLING_RATE, centred in the video, short
side resized to DATA.TEST_CROP_SIZE and centre-cropped, normalised with DATA.MEAN/STD) and the model
(MODEL.*; each checkpoint's own config decides MODEL.POOL). With two checkpoints (e.g. max-pool and
SoftPool models) their maps are shown side by side. The map is that of --class (default: each
model's predicted class) at the last stage. Writes NAME_saliency.png (rows: models; columns: frames)
and NAME_saliency.mp4 into --out.
"""
import os

import numpy as np
import torch


def load_clip(cfg, path: str):
    from vidpool.data.decoding import read_clip
    from vidpool.data.sampling import clip_step, frame_window, uniform_clips
    from vidpool.data.transforms import eval_transform

    d = cfg.DATA

    def choose(info):
        window = frame_window(info.fps, info.num_frames, None, None)
        return uniform_clips(window, d.NUM_FRAMES, clip_step(d.SAMPLING_RATE, info.fps, d.TARGET_FPS), 1)[0]

    frames, info, _ = read_clip(path, choose, d.DECODER, short_side=d.TEST_CROP_SIZE, exact=True)
    clip = eval_transform(frames, d.TEST_CROP_SIZE, 1, d.MEAN, d.STD)[0]  # C, T, S, S
    mean = torch.tensor(d.MEAN).view(3, 1, 1, 1)
    std = torch.tensor(d.STD).view(3, 1, 1, 1)
    shown = ((clip * std + mean).clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()
    return clip[None], shown, info.fps


def load_model(cfg, path: str):
    from vidpool.config import load_cfg
    from vidpool.engine.checkpoint import load_checkpoint
    from vidpool.models import build_model

    state = load_checkpoint(path)
    model_cfg = cfg
    if state.get("cfg"):
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(state["cfg"])
        try:
            model_cfg = load_cfg(f.name)
        finally:
            os.remove(f.name)
    model = build_model(model_cfg)
    model.load_state_dict(state["model"])
    return model, f"{model_cfg.MODEL.ARCH} {model_cfg.MODEL.POOL}"


def main(argv=None):
    from vidpool.viz.pooling import labelled, write_video
    from vidpool.viz.saliency import grad_cam, overlay

    from vidpool.cli._args import parse_with_config, parser

    ap = parser("visualize saliency", __doc__, cfg="required")
    ap.add_argument("video")
    ap.add_argument("--weights", action="append", required=True, metavar="FILE",
                    help="a checkpoint; twice for two models side by side")
    ap.add_argument("--class", dest="cls", type=int, help="class index (default: the prediction)")
    ap.add_argument("--out", default="viz", help="output folder (default viz)")
    args, cfg = parse_with_config(ap, argv)
    if len(args.weights) > 2:
        ap.error("give one or two --weights")
    for path in [args.video] + args.weights:
        if not os.path.isfile(path):
            ap.error(f"no such file: {path}")
    clip, shown, _ = load_clip(cfg, args.video)
    rows = []
    for path in args.weights:
        model, name = load_model(cfg, path)
        cam, cls, scores = grad_cam(model, clip, args.cls)
        print(f"{name} ({path}): class {cls}, score {scores[cls]:.3f}, predicted {int(scores.argmax())}")
        rows.append((f"{name}: class {cls} ({scores[cls]:.2f})", overlay(shown, cam.numpy())))
    scale = max(1, -(-160 // shown.shape[1]))  # small clips are enlarged (nearest) so labels fit
    if scale > 1:
        big = lambda v: v.repeat(scale, 1).repeat(scale, 2)  # noqa: E731
        shown, rows = big(shown), [(label, big(v)) for label, v in rows]
    name = os.path.splitext(os.path.basename(args.video))[0]
    os.makedirs(args.out, exist_ok=True)
    from PIL import Image

    t = shown.shape[0]
    picks = sorted(set(np.linspace(0, t - 1, min(t, 6)).round().astype(int).tolist()))
    grid = [np.concatenate([labelled(shown[i], f"frame {i}") for i in picks], 1)]
    grid += [np.concatenate([labelled(video[i], label if j == 0 else "") for j, i in enumerate(picks)], 1)
             for label, video in rows]
    png = os.path.join(args.out, f"{name}_saliency.png")
    Image.fromarray(np.concatenate(grid, 0)).save(png)
    video = np.concatenate([np.stack([labelled(f, "input") for f in shown])] +
                           [np.stack([labelled(f, label) for f in v]) for label, v in rows], 2)
    mp4 = os.path.join(args.out, f"{name}_saliency.mp4")
    write_video(mp4, video, cfg.DATA.TARGET_FPS / cfg.DATA.SAMPLING_RATE)  # the clip's own time scale
    print(f"wrote {png}\nwrote {mp4}")
    return 0
