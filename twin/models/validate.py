"""Parameter checks shared by the array models (PV plants, EV fleet, batteries).

These models hold ``n`` elements at once; each per-element parameter is given either as a
scalar (it applies to every element) or as one value per element. :func:`per_element`
broadcasts such a parameter to an array of ``n``; :func:`require` and
:func:`require_range` reject bad values at construction. Every message names the owner and
the parameter, says what was expected and what was found, so a wrong input is fixed where
it was written rather than debugged where it is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def per_element(value: Any, n: int, label: str, per: str, dtype: Any = float) -> np.ndarray:
    """``value`` broadcast to shape ``(n,)``: a scalar for all, or one value per element.

    Parameters
    ----------
    value : scalar or array_like
        The parameter as given.
    n : int
        Number of elements.
    label : str
        Who and what, as the message should name it, e.g. ``"PVPlants.tilt_deg"`` or
        ``"EVFleet.step: p_limit_mw"``.
    per : str
        What one element is, e.g. ``"plant"``, ``"EV"``, ``"charging point"``.
    dtype : numpy dtype
        Element type of the result; default float.

    Returns
    -------
    numpy.ndarray
        A read-only broadcast view of shape ``(n,)``; copy it (:func:`frozen`) to keep it.

    Raises
    ------
    ValueError
        ``"<label> must be a scalar or have one value per <per> (<n>); found shape …"``.
    """
    try:
        return np.broadcast_to(np.asarray(value, dtype=dtype), (n,))
    except ValueError:
        raise ValueError(
            f"{label} must be a scalar or have one value per {per} ({n}); "
            f"found shape {np.shape(value)}"
        ) from None


def frozen(value: Any) -> np.ndarray:
    """A read-only copy of ``value``: a frozen dataclass freezes its arrays too."""
    value = np.array(value)
    value.setflags(write=False)
    return value


def require(ok: np.ndarray | bool, owner: str, message: str,
            values: np.ndarray | float | None = None) -> None:
    """Raise ``ValueError("<owner>: <message>")`` unless every element of ``ok`` holds.

    Parameters
    ----------
    ok : bool or array of bool
        The condition, per element.
    owner : str
        What is being checked, e.g. ``"BatterySpec"``.
    message : str
        The expectation, naming the parameter, e.g. ``"soc_init must lie in [soc_min,
        soc_max]"``.
    values : array_like, optional
        The parameter's values, same shape as ``ok``; when given, the message adds the
        first value that breaks the condition (and its element when there are several).
    """
    ok = np.asarray(ok)
    if ok.all():
        return
    found = ""
    if values is not None:
        vals = np.broadcast_to(np.asarray(values, dtype=float), ok.shape).ravel()
        i = int(np.flatnonzero(~ok.ravel())[0])
        found = f"; found {vals[i]:g}" + (f" (element {i})" if vals.size > 1 else "")
    raise ValueError(f"{owner}: {message}{found}")


def require_range(
    values: Any,
    owner: str,
    name: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
) -> None:
    """Check that every value lies within the given bounds (NaN never does).

    With no bounds the values must be finite. The message states the expectation the way a
    reader would write it: ``"<name> must be > 0"``, ``"… must be >= 0"``,
    ``"… must lie in (0, 1]"``, ``"… must be finite"``, then the first value found
    outside.

    Parameters
    ----------
    values : array_like
        The parameter's values.
    owner, name : str
        Who holds the parameter and its name, for the message.
    lo, hi : float, optional
        Lower and upper bound; ``None`` = unbounded on that side.
    lo_open, hi_open : bool
        Whether the bound itself is excluded.
    """
    v = np.asarray(values, dtype=float)
    if lo is None and hi is None:
        require(np.isfinite(v), owner, f"{name} must be finite", v)
        return
    ok = np.ones(v.shape, dtype=bool)
    if lo is not None:
        ok &= v > lo if lo_open else v >= lo
    if hi is not None:
        ok &= v < hi if hi_open else v <= hi
    if hi is None:
        expected = f"must be {'>' if lo_open else '>='} {lo:g}"
    elif lo is None:
        expected = f"must be {'<' if hi_open else '<='} {hi:g}"
    else:
        expected = (f"must lie in {'(' if lo_open else '['}{lo:g}, {hi:g}"
                    f"{')' if hi_open else ']'}")
    require(ok, owner, f"{name} {expected}", v)
