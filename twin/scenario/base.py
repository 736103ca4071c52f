"""Building blocks shared by the scenario's pydantic models."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict

from twin.timebase import parse_duration_s

#: A positive duration: "1d", "90min", "PT1H", or seconds.
Seconds = Annotated[float, BeforeValidator(parse_duration_s)]
#: A duration that may be zero (offsets, fixed latencies).
OffsetSeconds = Annotated[float, BeforeValidator(lambda v: parse_duration_s(v, allow_zero=True))]




def _non_blank(name: str) -> str:
    if not name.strip():
        raise ValueError(f"a non-blank name; found {name!r}")
    return name


#: The name of an element, plant, RTU, …: other keys refer to it, so it cannot be blank.
Name = Annotated[str, AfterValidator(_non_blank)]


class Strict(BaseModel):
    # A mistyped key is an error, never silently ignored; NaN and ±inf are never a valid
    # setting (YAML reads `.nan` and `.inf` as floats) and would only fail deep in a model.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
