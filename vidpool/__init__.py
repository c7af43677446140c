"""vidpool: video action recognition with spatio-temporal SoftPool."""
import torch  # noqa: F401  (must be imported before the compiled extension)

__version__ = "0.1.0"


def predict(cfg, weights, videos, **kw):
    """Top-k classes of video files; see ``vidpool.deploy.predict.predict`` (imported on first use)."""
    from vidpool.deploy.predict import predict as run

    return run(cfg, weights, videos, **kw)


def load_weights(model, path, source="auto", **kw):
    """Load a checkpoint file of any supported source into ``model``; see ``vidpool.weights.load_weights``
    (imported on first use)."""
    from vidpool.weights import load_weights as load

    return load(model, path, source, **kw)
