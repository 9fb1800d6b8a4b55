"""`tulu <command>`: a thin layer that parses arguments and calls one function per command.

Two kinds of command:

* **recipe** commands (``sft``, ``dpo``, ``rm``, ``rlvr``, ``decontam``, ``pipeline``) take a YAML
  recipe plus ``key=value`` overrides; the module exposes ``CONFIG`` (a dataclass) and ``run(cfg)``.
* **flag** commands (``eval``, ``generate``, ``data``, ``model``, ``chat``, ``serve``, ``report``)
  take ordinary flags; the module exposes ``add_arguments(parser)`` and ``main(args) -> int``.

Modules are imported only when their command runs, so ``tulu --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    module: str
    kind: str  # "recipe" | "flags"
    help: str
    issue: str = ""  # tracker issue that builds it, shown while it is unfinished


COMMANDS: dict[str, Command] = {
    "pipeline": Command("tulu.pipeline", "recipe",
                        "Run the whole recipe (decontam -> SFT -> DPO -> RLVR -> eval -> report) from one YAML file."),
    "sft": Command("tulu.train.sft", "recipe", "Supervised finetuning on chat data (Tulu 3 stage 1).", "#4"),
    "dpo": Command("tulu.train.dpo", "recipe",
                   "Preference tuning: DPO, length-normalized DPO, SimPO, IPO, WPO (Tulu 3 stage 2).", "#6"),
    "rm": Command("tulu.train.rm", "recipe", "Train a Bradley-Terry reward model.", "#6"),
    "rlvr": Command("tulu.train.rlvr", "recipe",
                    "RL with verifiable rewards: PPO as in Tulu 3, GRPO, Dr. GRPO, DAPO (Tulu 3 stage 3)."),
    "decontam": Command("tulu.decontam.cli", "flags",
                        "Find and remove benchmark test items in training data (8-gram overlap).", "#8"),
    "eval": Command("tulu.eval_cli", "flags", "Evaluate a model on the Tulu 3 dev / unseen suites.", "#7"),
    "generate": Command("tulu.rollout.cli", "flags", "Generate completions for a file of prompts.", "#5"),
    "data": Command("tulu.data_cli", "flags", "Validate, convert, inspect and generate chat datasets; synthesize "
                                           "persona prompts and preference pairs with models."),
    "model": Command("tulu.model_cli", "flags", "Prepare the embedded model, show model info, chat once."),
    "report": Command("tulu.report.cli", "flags", "Build the HTML/markdown report from eval results.", "#7"),
    "serve": Command("tulu.serve.cli", "flags",
                     "OpenAI-compatible server and a chat page for trained models (side by side)."),
}


class NotBuilt(Exception):
    pass


def _import(cmd_name: str):
    cmd = COMMANDS[cmd_name]
    try:
        return importlib.import_module(cmd.module)
    except ModuleNotFoundError as exc:
        if exc.name and (cmd.module == exc.name or cmd.module.startswith(exc.name + ".")):
            where = f" (tracked in issue {cmd.issue})" if cmd.issue else ""
            raise NotBuilt(f"tulu {cmd_name}: not implemented yet{where}.") from None
        raise


class _RecipeHelp(argparse.Action):
    """`--help` for a recipe command: usage plus every config field with its help text."""

    def __init__(self, option_strings, dest, command: str = "", **kwargs):
        self.command = command
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from tulu.config import format_help

        parser.print_help()
        try:
            mod = _import(self.command)
        except NotBuilt as exc:
            print(f"\n{exc}")
            parser.exit(0)
        print()
        print(format_help(mod.CONFIG))
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    from tulu import __version__

    parser = argparse.ArgumentParser(
        prog="tulu",
        description="tulu: the Tulu 3 post-training recipe, from a 2-core laptop to a GPU cluster.",
        epilog="Run `tulu COMMAND --help` for a command's options. Start with `tulu pipeline recipes/embedded_cpu.yaml`.",
    )
    parser.add_argument("--version", action="version", version=f"tulu {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        if cmd.kind == "recipe":
            p = sub.add_parser(name, help=cmd.help, description=cmd.help, add_help=False,
                               epilog="Overrides use dotted keys, e.g. train.learning_rate=1e-5 data.max_length=512.")
            p.add_argument("-h", "--help", action=_RecipeHelp, command=name, help="show options and every config field")
            p.add_argument("recipe", help="YAML recipe file (see recipes/)")
            p.add_argument("overrides", nargs="*", metavar="key=value", help="override a recipe field")
        else:
            p = sub.add_parser(name, help=cmd.help, description=cmd.help)
            p.set_defaults(_needs_arguments=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Flag commands add their own options: find the command word, import its module, and let it extend
    # its sub-parser before the real parse.
    first = next((a for a in argv if not a.startswith("-")), None)
    if first in COMMANDS and COMMANDS[first].kind == "flags":
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sp = subparsers.choices[first]
        try:
            mod = _import(first)
        except NotBuilt as exc:
            if "-h" in argv or "--help" in argv:
                sp.print_help()
            print(exc, file=sys.stderr)
            return 2
        mod.add_arguments(sp)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if args.command is None:
        parser.print_help()
        return 0
    from tulu.config import ConfigError
    from tulu.data.formats import DataError

    try:
        mod = _import(args.command)
        if COMMANDS[args.command].kind == "recipe":
            from tulu.config import load_config

            cfg = load_config(mod.CONFIG, args.recipe, args.overrides)
            result = mod.run(cfg)
            return result if isinstance(result, int) else 0
        return int(mod.main(args) or 0)
    except NotBuilt as exc:
        print(exc, file=sys.stderr)
        return 2
    except (ConfigError, DataError, FileNotFoundError) as exc:
        print(f"tulu {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tulu {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
