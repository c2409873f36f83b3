"""Reading a settings file a user points us at (config, stage map): bounded and typed.

A path given by a user may be anything: a folder, a device such as `/dev/zero`
(read until the process is killed), a FIFO (blocks forever) or a binary file. A
settings file is a small regular text file, so anything else is refused in one
sentence before a byte of it is parsed.
"""

from __future__ import annotations

import stat
from pathlib import Path

from journey_mining.errors import ConfigError

__all__ = ["MAX_SETTINGS_BYTES", "read_settings_file"]

MAX_SETTINGS_BYTES = 1 << 20  # the default stage map is 2 kB; a config is smaller


def read_settings_file(path: str | Path, what: str) -> str:
    """The text of the settings file at `path` (`what`: "config file", "stage map").

    Raises a ConfigError naming the file when it is missing, not a regular file, larger
    than `MAX_SETTINGS_BYTES`, binary, or not UTF-8 text.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: {what} not found") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: the {what} cannot be read ({exc.strerror})") from exc
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{path}: the {what} is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{path}: the {what} is not a regular file (a device, FIFO or "
                          "socket); give the path of a YAML file")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SETTINGS_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: the {what} cannot be read ({exc.strerror})") from exc
    if len(data) > MAX_SETTINGS_BYTES:
        raise ConfigError(f"{path}: the {what} is larger than "
                          f"{MAX_SETTINGS_BYTES // 2**20} MiB: not a settings file")
    if b"\0" in data:
        raise ConfigError(f"{path}: the {what} is a binary file, not YAML text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the {what} is not UTF-8 text (byte {exc.start})") from exc
