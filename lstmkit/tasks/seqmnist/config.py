"""`lstmkit train seqmnist`: every setting, with its flag."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lstmkit.data.mnist import MODES
from lstmkit.recipe import at_least, between, option, section
from lstmkit.training.config import TrainConfig

NAME = "seqmnist"


@dataclass
class MnistData:
    npz: Path | None = option(None, ".npz with x_train, y_train, x_test, y_test", required=True,
                              metavar="FILE")
    valid_size: int = option(5000, "training images held out for validation (the last ones)",
                             check=at_least(1))
    limit_train: int = option(0, "use only the first N training images (0: all)", check=at_least(0))
    limit_test: int = option(0, "score only the first N test images (0: all)", check=at_least(0))


@dataclass
class MnistModel:
    """What a checkpoint needs to rebuild the classifier and read its images."""
    mode: str = option("rows", "rows: 28 steps of 28 pixels; pixels: 784 steps; permuted: 784 in a "
                       "fixed random order drawn from --seed", choices=MODES)
    input_size: int = option(0, flag=False, check=at_least(1))   # pixels per step, from the mode
    hidden_size: int = option(128, "LSTM units", check=at_least(1))
    num_layers: int = option(1, "stacked LSTM layers", check=at_least(1))
    dropout: float = option(0.0, "dropout between LSTM layers", check=between(0, 1, high_open=True))
    steps: int = option(0, flag=False, check=at_least(1))        # sequence length, from the mode


@dataclass
class TrainRecipe:
    data: MnistData = section(MnistData)
    model: MnistModel = section(MnistModel)
    training: TrainConfig = section(lambda: TrainConfig(
        out=Path("runs/seqmnist"), epochs=5, batch_size=128, lr=2e-3, lr_schedule="cosine",
        clip=1.0), "training")


def upgrade_v1(model: dict, extras: dict) -> tuple[dict, dict]:
    """Format 1 saved the same settings under the same names."""
    return model, extras
