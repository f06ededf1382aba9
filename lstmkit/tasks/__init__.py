"""Ready tasks, one package each: its settings (config.py, which are also its flags), its model,
and how it trains, evaluates and predicts.

Every task package exposes NAME (the name on the command line and in checkpoints), HELP (one line
for --help), MODEL (a saved_model.ModelKind: how its checkpoints rebuild the model), TrainRecipe
and train_main(recipe) -> exit status, evaluate_main(EvaluateRecipe) -> exit status (`lstmkit
evaluate`, lstmkit.tasks.evaluation); tasks that predict also PredictRecipe and predict_main. A
task whose settings must agree with each other exposes check_recipe(recipe), which the train
command runs before it touches the run folder or reads data.
"""
from lstmkit.tasks import forecast, language_model, sentiment, seqmnist

TASKS = {task.NAME: task for task in (sentiment, language_model, forecast, seqmnist)}
PREDICTING = {name: task for name, task in TASKS.items() if hasattr(task, "PredictRecipe")}
