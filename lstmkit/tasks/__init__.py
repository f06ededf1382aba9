"""Ready tasks. Each task module exposes the protocol used by `lstmkit train` / `lstmkit predict`:

    NAME: str
    HELP: str                              one line for --help
    add_train_args(parser) -> None
    train_main(args) -> int
    add_predict_args(parser) -> None       (tasks that predict)
    predict_main(args) -> int

Task modules are imported only when their command runs.
"""

# task name on the command line -> module under lstmkit.tasks
TRAIN_TASKS = {
    "sentiment": "lstmkit.tasks.sentiment",
    "lm": "lstmkit.tasks.language_model",
    "forecast": "lstmkit.tasks.forecast",
    "seqmnist": "lstmkit.tasks.seqmnist",
}
PREDICT_TASKS = {
    "sentiment": "lstmkit.tasks.sentiment",
    "forecast": "lstmkit.tasks.forecast",
}
