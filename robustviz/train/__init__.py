"""Training engine: one loop for every defense.

``Trainer(defense=..., epochs=..., ...)`` stores options; ``fit(model, train, val=...,
run_dir=...)`` trains, validates clean and under attack after every epoch, writes a
resumable run directory, calls callbacks, and runs under DDP when launched by ``torchrun``::

    import robustviz as rv
    train = rv.data.load("fashion-mnist", n=10_000)
    test = rv.data.load("fashion-mnist", "test", n=2_000)
    model = rv.models.build("tinycnn", num_classes=10, in_channels=1)
    trainer = rv.train.Trainer(defense={"name": "trades", "beta": 6, "eps": 0.1},
                               epochs=5, lr=0.01, batch_size=128)
    trainer.fit(model, train, val=test, run_dir="runs/trades")
    trainer.history_[-1]["val_robust_acc"]
"""
from robustviz.train._config import TrainConfig
from robustviz.train._schedule import Schedule, resolve_milestones
from robustviz.train._trainer import NonFiniteLossError, Trainer
from robustviz.train._overfit import CatastrophicOverfitting, Collapse, OverfitGuard, detect_collapse
from robustviz.train._finetune import (FINETUNE_DEFENSES, FINETUNE_MODES, PretrainConfig, check_head_lr,
                                       evaluate_finetuned, freeze_encoder, head_input_scale, load_encoder,
                                       prepare_finetune)

__all__ = ["Trainer", "TrainConfig", "Schedule", "resolve_milestones", "NonFiniteLossError",
           "OverfitGuard", "CatastrophicOverfitting", "Collapse", "detect_collapse"]
__all__ += ["PretrainConfig", "load_encoder", "prepare_finetune", "freeze_encoder", "evaluate_finetuned",
            "FINETUNE_MODES", "FINETUNE_DEFENSES", "head_input_scale", "check_head_lr"]
