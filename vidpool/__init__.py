"""vidpool: video action recognition with spatio-temporal SoftPool."""
import torch  # noqa: F401  (must be imported before the compiled extension)

__version__ = "0.1.0"
