"""Every configuration key with its default and a one-line meaning (PySlowFast names).

Only the MODEL section exists so far; data, solver, training and test keys come with the engine.
"""
from fvcore.common.config import CfgNode

_C = CfgNode()

_C.MODEL = CfgNode()
_C.MODEL.ARCH = "r3d_50"          # registered model name, see vidpool.models.list_models()
_C.MODEL.NUM_CLASSES = 400        # classifier outputs
_C.MODEL.POOL = "max"             # method of every non-global pool (vidpool.ops.list_pools(); max = original)
_C.MODEL.HEAD_POOL = "avg"        # global pool before the classifier: avg | max | softpool
_C.MODEL.DROPOUT_RATE = 0.5       # dropout before the classifier
_C.MODEL.SRTG_PLACE = "final"     # SRTG models: where the SR block sits (start|top|mid|end|final)
_C.MODEL.SRTG_GATE = "cycle"      # SRTG models: temporal gate (none|cycle)
_C.MODEL.SRTG_GATE_FROM_EPOCH = 0  # SRTG models: first epoch with the gate on
_C.MODEL.SRTG_HIDDEN = "width"    # SRTG models: LSTM hidden size capped at the block width | "channels" (uncapped)


def get_cfg() -> CfgNode:
    """A fresh copy of the defaults."""
    return _C.clone()
