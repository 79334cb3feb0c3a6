"""The one way both CLIs read configuration: `.env` in the current directory, then the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

from dotenv import dotenv_values


def load_env(env: Optional[Mapping[str, str]] = None, dotenv_path: Optional[str] = ".env") -> dict[str, str]:
    """Environment wins over `.env`, as python-dotenv does by default; values are stripped."""
    values: dict[str, str] = {}
    if dotenv_path and Path(dotenv_path).is_file():
        values.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    values.update(os.environ if env is None else env)
    return {k: v.strip() for k, v in values.items()}


def truthy(raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}
