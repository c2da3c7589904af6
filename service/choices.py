"""The server's enumerated settings, as types: read by Settings, the flags and the benchmark.

Only `typing` here, so that `skipfold serve --help` and `skipfold bench --help` need nothing
beyond the base install.
"""

from typing import Literal, get_args

Device = Literal["cpu", "cuda", "auto"]
OptimizationLevel = Literal["disabled", "basic", "extended", "all"]
LogLevel = Literal["debug", "info", "warning", "error"]

DEVICES: tuple[str, ...] = get_args(Device)
LEVELS: tuple[str, ...] = get_args(OptimizationLevel)
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
