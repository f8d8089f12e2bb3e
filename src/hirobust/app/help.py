"""What ``hirobust <command> --help`` lists under the options: the config keys the command takes."""

from __future__ import annotations

from .config import describe_keys


def keys_help(command: str) -> str | None:
    """The config keys a subcommand takes, with defaults, types and one-line docs (for ``--help`` only: it imports
    the config classes, which usage errors must not wait for)."""
    if command == "finetune":
        from ..methods import CONFIGS
        from .schema import FinetuneConfig

        lines = describe_keys(FinetuneConfig, skip=("options", "reference"))
        for name, config in CONFIGS.items():
            lines += [f"options of --method {name}:", *describe_keys(config, "options")]
    elif command == "evaluate":
        from .schema import DataConfig, EvalConfig

        lines = describe_keys(DataConfig, "data") + describe_keys(EvalConfig, "eval")
    elif command == "pretrain":
        from .schema import PretrainConfig

        lines = describe_keys(PretrainConfig)
    elif command in ("demo", "ablate"):
        from .demo import DemoConfig

        lines = describe_keys(DemoConfig, skip=("methods", "tables"))
    elif command == "study":
        from .study import StudyConfig

        lines = describe_keys(StudyConfig, skip=("methods", "parts", "quick"))
    elif command == "zeroshot":
        from .zeroshot import ZeroShotConfig

        lines = describe_keys(ZeroShotConfig, skip=("methods",))
    elif command == "bench":
        from .bench import BenchConfig

        lines = describe_keys(BenchConfig)
    else:
        return None
    return "config keys (set as key=value; lists as a,b or [a,b]; --print-config shows the resolved config):\n" + \
        "\n".join(lines)
