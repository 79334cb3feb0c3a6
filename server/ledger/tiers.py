"""Model tiers: a job may ask for at least `base`, `small`, `medium` or `large`; a host's tier is read
from its model file's name (ggml-small.en-q5_1.bin is small). Unknown models (and legacy clients,
who name none) are tier 0: they get only work that asks for no tier."""

from __future__ import annotations

import re
from typing import Any

TIERS = {"tiny": 1, "base": 2, "small": 3, "medium": 4, "large": 5}
_NAME = re.compile(r"(tiny|base|small|medium|large)")


def model_tier(model: Any) -> int:
    m = _NAME.search(model.lower()) if isinstance(model, str) else None
    return TIERS[m.group(1)] if m else 0
