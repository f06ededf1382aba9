"""`lstmkit generate --model DIR --prime TEXT`: sample text from a language model, printed as it
comes (lstmkit.tasks.language_model.generate)."""
from lstmkit.recipe import add_flags, from_args
from lstmkit.tasks import language_model


def register(subparsers) -> None:
    parser = subparsers.add_parser("generate", help="sample text from a trained language model",
                                   description="Sample text from a language model trained by "
                                               "`lstmkit train lm`, printed as it comes.")
    add_flags(parser, language_model.GenerateRecipe)
    parser.set_defaults(func=lambda args: language_model.generate_main(
        from_args(language_model.GenerateRecipe, args)))
