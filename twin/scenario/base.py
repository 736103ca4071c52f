"""Building blocks shared by the scenario's pydantic models."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

from twin.timebase import parse_duration_s

#: A positive duration: "1d", "90min", "PT1H", or seconds.
Seconds = Annotated[float, BeforeValidator(parse_duration_s)]
#: A duration that may be zero (offsets, fixed latencies).
OffsetSeconds = Annotated[float, BeforeValidator(lambda v: parse_duration_s(v, allow_zero=True))]


class Strict(BaseModel):
    # A mistyped key is an error, never silently ignored.
    model_config = ConfigDict(extra="forbid")
