"""Training: the one loop (`fit`) every task and the demo's experiments train through.

fit.py          the loop: epochs, validation, early stopping, best/last checkpoints, resume, DDP
spec.py         TrainSpec (what a task hands over), StepOutput, TrainResult
config.py       TrainConfig: the settings (and `training` flags) every training command shares
schedule.py     the optimizer and its learning-rate schedule (torch's LambdaLR)
checkpoint.py   checkpoints: safetensors + JSON, written atomically, read and checked in one place
resume.py       optimizer, RNG and loop state for --resume, without pickle
run_folder.py   --out: refused when it holds a run (unless --resume / --overwrite), writable
distributed.py  torchrun / DDP glue
atomic.py       writes that are complete or absent (files and checkpoint folders)
progress.py     the progress bar
"""
from lstmkit.training.config import TrainConfig, epoch_generator, select_device
from lstmkit.training.fit import evaluate_batches, fit, setup
from lstmkit.training.schedule import make_optimizer
from lstmkit.training.spec import (StepOutput, TrainResult, TrainSpec, detach_state,
                                   move_to_device, unwrap)

__all__ = ["TrainConfig", "TrainSpec", "TrainResult", "StepOutput", "fit", "setup",
           "evaluate_batches", "epoch_generator", "select_device", "make_optimizer",
           "detach_state", "move_to_device", "unwrap"]
