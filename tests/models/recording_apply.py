"""A device stand-in for the comms and crew tests: records when it was applied."""

from __future__ import annotations


class RecordingApply:
    """Callable ``apply(t_s)`` that remembers every call and accepts or refuses."""

    def __init__(self, accept: bool = True):
        self.accept = accept
        self.calls: list[float] = []

    def __call__(self, t_s: float) -> bool:
        self.calls.append(t_s)
        return self.accept
