"""The ``ers`` command: a thin click shell over the project's Python API.

Subcommands live next to the code they drive (``trainer/cli.py``,
``export/cli.py``, ``edge/commands.py``) and are imported only when invoked,
so ``ers --help`` and ``ers run`` never import TensorFlow, and a runtime-only
install says which extra to add for the training commands.
"""

from __future__ import annotations

import importlib
import sys

import click

from edge.errors import ErsError

# name -> (module, attribute, short help, extra that provides its dependencies)
_COMMANDS: dict[str, tuple[str, str, str, str]] = {
    "data": ("trainer.cli", "data", "Convert or split a data set into train/val/test class folders.", "train"),
    "train": ("trainer.cli", "train", "Train a model from a config file and command-line overrides.", "train"),
    "evaluate": ("trainer.cli", "evaluate", "Evaluate a trained Keras model on a test split.", "train"),
    "pack": ("trainer.portable.cli", "pack", "Pack a recipe's data set for `ers distill` elsewhere.", "train"),
    "distill": ("trainer.portable.cli", "distill", "Train a teacher and distil the recipe's network from it.", "train"),
    "export": ("export.cli", "export", "Convert a trained model to TFLite variants and verify them.", "train"),
    "run": ("edge.commands", "run", "Label every face in a video, camera, image or folder.", "edge"),
    "bench": ("edge.commands", "bench", "Measure frames per second of the runtime, stage by stage.", "edge"),
}


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C ended


class OneLineErrorGroup(click.Group):
    """A click group that reports the project's errors (bad input) in one line, exit code 1.

    ``--debug`` on the ``ers`` group re-raises them with the traceback. Ctrl-C
    outside a run's frame loop (which finishes its outputs and exits 130
    itself), e.g. while models load, exits 130 too, not click's 1.
    """

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ErsError as error:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            raise click.ClickException(str(error)) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)


class LazyGroup(OneLineErrorGroup):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module_name, attribute, _, extra = _COMMANDS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            missing = error.name or "a dependency"
            raise click.ClickException(
                f"`ers {name}` needs {missing}, which is not installed; "
                f"install the extra with: pip install 'ers[{extra}]'"
            ) from None
        return getattr(module, attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text comes from the table, so listing commands imports nothing.
        rows = [(name, _COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup)
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="ers")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Real-time facial emotion recognition: train, export, run and benchmark."""
    ctx.ensure_object(dict)["debug"] = debug


def main() -> None:
    cli(prog_name="ers")


if __name__ == "__main__":
    sys.exit(main())
