"""Training and testing: ``train(cfg)``, ``test(cfg)``; checkpoints, LR schedule, distributed helpers."""
from .tester import test
from .trainer import evaluate, train, train_epoch

__all__ = ["train", "test", "train_epoch", "evaluate"]
