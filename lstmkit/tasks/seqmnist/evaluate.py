"""`lstmkit evaluate` for a sequential-MNIST run: the accuracy on an .npz's x_test / y_test, the
images read in the run's mode (and pixel order)."""
from __future__ import annotations

import numpy as np
import torch

from lstmkit.data.mnist import load_mnist_npz, to_sequences
from lstmkit.tasks.evaluation import write_report
from lstmkit.tasks.saved_model import load_model
from lstmkit.tasks.seqmnist.model import MODEL, accuracy


def evaluate_main(recipe) -> int:
    options = recipe.evaluate
    loaded = load_model(options.model, MODEL, backend=options.backend)
    arrays = load_mnist_npz(options.test)
    permutation = loaded.extras.get("permutation")
    sequences = to_sequences(arrays["x_test"], loaded.config.mode,
                             None if permutation is None else np.asarray(permutation))
    labels = torch.from_numpy(arrays["y_test"].astype(np.int64))
    report = {"test_accuracy": accuracy(loaded.model, sequences, labels, options.batch_size),
              "test_images": len(labels), "mode": loaded.config.mode}
    print(f"test accuracy {report['test_accuracy']:.4f} ({len(labels):,} images)")
    print(f"report: {write_report(options, report)}")
    return 0
