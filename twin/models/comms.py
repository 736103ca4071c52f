"""SCADA telemetry and the command path as a discrete-event model (SimPy, no mosaik).

Each RTU scans its points periodically and sends one message per scan up its link to the
control centre; commands travel down the link to a device and an acknowledgement travels
back up. A link has a latency per direction (fixed part plus a random part), a loss
probability, an optional bandwidth (messages queue for the transmitter) and outage windows.

The model keeps no clock of its own: :class:`CommNetwork` lives in a
:class:`simpy.Environment` that its owner (the mosaik adapter) moves along with
:meth:`CommNetwork.advance_to`; other models (the field crews) may share that environment.
Times are float seconds since the run start.

Rules
-----
Outages
    A message is lost when any part of its journey — from being handed to the link until
    its delivery — touches an outage window ``[start, end)``: messages sent in a window
    are lost, and so are messages in flight when a window opens or whose delivery would
    fall in one. Hence nothing is ever delivered inside a window. Latency and loss are
    drawn for every message, outage or not, so an outage does not shift later draws.
Bandwidth
    With ``bandwidth_bps`` set, each direction of a link (full duplex) has one transmitter
    serving messages first come, first served: a message starts transmitting when the
    transmitter is free and takes ``size_bytes · 8 / bandwidth_bps`` seconds; its latency
    counts from the end of transmission. This is a SimPy ``Resource`` of capacity 1,
    computed directly from the time the transmitter falls free (no process per message).
    Lost messages occupy the transmitter too: they are lost on the way, not before it.
Commands
    A command is handed to the downlink when sent. If it arrives, the device's ``apply``
    is called at the arrival time and an acknowledgement (accepted or refused) goes back
    up. The outcome is ``success`` or ``failed`` when that acknowledgement arrives within
    ``command_timeout_s`` of sending (arriving exactly at the deadline counts), otherwise
    ``timeout`` at ``sent + command_timeout_s`` — even when the device applied the
    command, whose ``applied_t_s`` is then still recorded. A command still in transit at
    the deadline times out and is applied if and when it arrives later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable, Iterable, Literal

import numpy as np
import simpy
from simpy.events import Timeout

LatencyKind = Literal["none", "lognormal", "exponential", "uniform"]
LATENCY_KINDS = ("none", "lognormal", "exponential", "uniform")

#: Quantities read as a state, not a value: delivered as ``bool``, without noise or
#: quantisation.
BOOLEAN_QUANTITIES = frozenset({"closed", "fault_passed", "in_service"})

#: Resolution of a point without an explicit quantum: a 12-bit converter over the range.
ADC_BITS = 12

#: Draws are taken from the generators in blocks; the hot path then only indexes a list.
_BLOCK = 512


# --------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class LatencySpec:
    """One-way latency of a link direction: a fixed part plus a random part.

    Parameters
    ----------
    fixed_s : float
        Fixed part (propagation, processing) [s], ≥ 0.
    kind : {"none", "lognormal", "exponential", "uniform"}
        Distribution of the random part.
    mean_s : float
        Mean of the random part [s], ≥ 0 (0 for ``"none"``).
    sigma_s : float or None
        Standard deviation of the random part [s]. Required for ``"lognormal"`` (unless
        ``mean_s`` is 0); for ``"uniform"`` it defaults to that of ``U(0, 2·mean_s)``;
        ``"exponential"`` has ``sigma_s = mean_s`` by nature, so any other value is
        refused.

    Notes
    -----
    The lognormal is given by its own mean :math:`m` and standard deviation :math:`s`;
    the underlying normal then has

    .. math::

        \\sigma_n^2 = \\ln\\left(1 + s^2/m^2\\right), \\qquad
        \\mu_n = \\ln m - \\sigma_n^2 / 2 .

    The uniform with mean :math:`m` and standard deviation :math:`s` spans
    :math:`[m - \\sqrt{3}s,\\ m + \\sqrt{3}s]`, which must not reach below 0.
    A random part with ``mean_s = 0`` is 0 for every kind.
    """

    fixed_s: float
    kind: LatencyKind = "none"
    mean_s: float = 0.0
    sigma_s: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in LATENCY_KINDS:
            raise ValueError(f"LatencySpec.kind: expected one of {LATENCY_KINDS}; "
                             f"found {self.kind!r}")
        if not (math.isfinite(self.fixed_s) and self.fixed_s >= 0):
            raise ValueError(f"LatencySpec.fixed_s must be finite and >= 0; found {self.fixed_s}")
        if not (math.isfinite(self.mean_s) and self.mean_s >= 0):
            raise ValueError(f"LatencySpec.mean_s must be finite and >= 0; found {self.mean_s}")
        sigma = self.sigma_s
        if sigma is not None and not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"LatencySpec.sigma_s must be finite and >= 0; found {sigma}")
        if self.kind == "none" and (self.mean_s != 0 or sigma not in (None, 0)):
            raise ValueError("LatencySpec: kind 'none' has no random part; expected mean_s = 0 "
                             f"and no sigma_s; found mean_s={self.mean_s}, sigma_s={sigma}")
        if self.mean_s == 0 and sigma not in (None, 0):
            raise ValueError("LatencySpec: mean_s = 0 means no random part, so sigma_s must "
                             f"be unset or 0; found {sigma}")
        if self.kind == "lognormal" and self.mean_s > 0 and sigma is None:
            raise ValueError("LatencySpec: a lognormal needs sigma_s (its standard "
                             "deviation [s])")
        if self.kind == "exponential" and sigma is not None and not math.isclose(
                sigma, self.mean_s, rel_tol=1e-9, abs_tol=1e-15):
            raise ValueError("LatencySpec: an exponential's standard deviation equals its mean; "
                             f"leave sigma_s unset (found {sigma}, mean_s {self.mean_s})")
        if self.kind == "uniform" and sigma is not None and math.sqrt(3) * sigma > self.mean_s * (
                1 + 1e-12):
            raise ValueError("LatencySpec: a uniform with mean_s and sigma_s spans "
                             "mean_s ± √3·sigma_s, which must stay >= 0; found mean_s="
                             f"{self.mean_s}, sigma_s={sigma}")

    # The lognormal's underlying normal and the uniform's bounds, from mean and sigma.
    def _lognormal_mu_sigma(self) -> tuple[float, float]:
        m, s = self.mean_s, float(self.sigma_s or 0.0)
        var_n = math.log1p((s / m) ** 2)
        return math.log(m) - var_n / 2, math.sqrt(var_n)

    def _uniform_bounds(self) -> tuple[float, float]:
        half = self.mean_s if self.sigma_s is None else math.sqrt(3) * self.sigma_s
        return max(self.mean_s - half, 0.0), self.mean_s + half

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` latencies [s], fixed plus random part, drawn from ``rng``."""
        if self.kind == "none" or self.mean_s == 0:
            return np.full(n, float(self.fixed_s))
        if self.kind == "lognormal":
            mu, sigma_n = self._lognormal_mu_sigma()
            random_s = rng.lognormal(mu, sigma_n, n)
        elif self.kind == "exponential":
            random_s = rng.exponential(self.mean_s, n)
        else:
            lo, hi = self._uniform_bounds()
            random_s = rng.uniform(lo, hi, n)
        return self.fixed_s + random_s

    def mean_latency_s(self) -> float:
        """Analytic mean latency [s], fixed plus random part: ``fixed_s + mean_s``.

        (Not ``mean_s()``: that name is the field holding the random part's mean.)
        """
        return self.fixed_s + self.mean_s

    def quantile_s(self, q: float) -> float:
        """Analytic ``q``-quantile of the latency [s], fixed plus random part.

        Parameters
        ----------
        q : float
            Probability in (0, 1).
        """
        if not 0.0 < q < 1.0:
            raise ValueError(f"LatencySpec.quantile_s: q must lie in (0, 1); found {q}")
        if self.kind == "none" or self.mean_s == 0:
            return float(self.fixed_s)
        if self.kind == "lognormal":
            mu, sigma_n = self._lognormal_mu_sigma()
            return self.fixed_s + math.exp(mu + sigma_n * NormalDist().inv_cdf(q))
        if self.kind == "exponential":
            return self.fixed_s - self.mean_s * math.log1p(-q)
        lo, hi = self._uniform_bounds()
        return self.fixed_s + lo + q * (hi - lo)


@dataclass(frozen=True)
class LinkSpec:
    """A communication link between an RTU and the control centre.

    Parameters
    ----------
    uplink : LatencySpec
        RTU → control centre (telemetry, acknowledgements).
    downlink : LatencySpec
        Control centre → RTU (commands).
    loss_prob : float
        Probability that a message is lost, each direction, independently [-].
    bandwidth_bps : float or None
        Transmission rate of each direction [bit/s]; None means instant transmission.
    outages : tuple of (float, float)
        Windows ``[start, end)`` [s] in which the link carries nothing (see the module's
        rules). ``end`` may be ``inf``.
    """

    uplink: LatencySpec
    downlink: LatencySpec
    loss_prob: float = 0.0
    bandwidth_bps: float | None = None
    outages: tuple[tuple[float, float], ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.loss_prob <= 1.0:
            raise ValueError(f"LinkSpec.loss_prob must lie in [0, 1]; found {self.loss_prob}")
        if self.bandwidth_bps is not None and not (
                math.isfinite(self.bandwidth_bps) and self.bandwidth_bps > 0):
            raise ValueError("LinkSpec.bandwidth_bps must be > 0 and finite (or None); "
                             f"found {self.bandwidth_bps}")
        windows = []
        for window in self.outages:
            try:
                start, end = (float(x) for x in window)
            except (TypeError, ValueError):
                raise ValueError("LinkSpec.outages: expected (start_s, end_s) pairs; "
                                 f"found {window!r}") from None
            if not (math.isfinite(start) and end > start):
                raise ValueError("LinkSpec.outages: expected finite start_s < end_s; "
                                 f"found ({start}, {end})")
            windows.append((start, end))
        object.__setattr__(self, "outages", tuple(sorted(windows)))

    @classmethod
    def fibre(cls) -> "LinkSpec":
        """Utility fibre: 5 ms fixed + exponential jitter of mean 1 ms, loss 1e-4."""
        latency = LatencySpec(fixed_s=0.005, kind="exponential", mean_s=0.001)
        return cls(uplink=latency, downlink=latency, loss_prob=1e-4)

    @classmethod
    def cellular(cls) -> "LinkSpec":
        """Public cellular (LTE): 40 ms fixed + lognormal mean 60 ms, σ 50 ms; loss 1 %."""
        latency = LatencySpec(fixed_s=0.040, kind="lognormal", mean_s=0.060, sigma_s=0.050)
        return cls(uplink=latency, downlink=latency, loss_prob=0.01)


@dataclass(frozen=True)
class PointSpec:
    """One measured point of an RTU.

    Parameters
    ----------
    name : str
        Unique within its RTU.
    quantity : str
        What it measures: ``"vm_pu"``, ``"i_ka"``, ``"p_mw"``, ``"q_mvar"``, … or one of
        :data:`BOOLEAN_QUANTITIES` (``"closed"``, ``"fault_passed"``, ``"in_service"``),
        which are delivered as ``bool`` without noise or quantisation.
    range : (float, float)
        Measuring range (low, high) in the quantity's unit. It scales the noise and sets
        the default resolution; values outside it are not clipped.
    noise_pct : float
        Standard deviation of the Gaussian measurement noise, in % of ``high − low``.
    quantum : float or None
        Resolution in the quantity's unit: delivered values lie on ``low + k·quantum``.
        None means a 12-bit converter over the range: ``quantum = (high − low) / 4095``.
    element : str
        The grid element it measures, ``"<table>:<name>"`` as the DMS's network model
        names it (``"load:EV Bus 10"``); resolved once when the field is built, so no
        receiver parses ``name``. Empty for a point outside the grid model.
    """

    name: str
    quantity: str
    range: tuple[float, float]
    noise_pct: float = 0.5
    quantum: float | None = None
    element: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("PointSpec.name must not be empty")
        lo, hi = (float(x) for x in self.range)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"PointSpec {self.name!r}: range must be finite with low < high; "
                             f"found {self.range}")
        object.__setattr__(self, "range", (lo, hi))
        if not (math.isfinite(self.noise_pct) and self.noise_pct >= 0):
            raise ValueError(f"PointSpec {self.name!r}: noise_pct must be >= 0; "
                             f"found {self.noise_pct}")
        if self.quantum is not None and not (math.isfinite(self.quantum) and self.quantum > 0):
            raise ValueError(f"PointSpec {self.name!r}: quantum must be > 0 (or None); "
                             f"found {self.quantum}")

    @property
    def is_boolean(self) -> bool:
        return self.quantity in BOOLEAN_QUANTITIES

    @property
    def sigma(self) -> float:
        """Noise standard deviation in the quantity's unit (0 for boolean quantities)."""
        if self.is_boolean:
            return 0.0
        return self.noise_pct / 100.0 * (self.range[1] - self.range[0])

    @property
    def step(self) -> float:
        """Resolution in the quantity's unit: ``quantum`` or the 12-bit step of the range."""
        if self.quantum is not None:
            return float(self.quantum)
        return (self.range[1] - self.range[0]) / (2**ADC_BITS - 1)


@dataclass(frozen=True)
class RTUSpec:
    """A remote terminal unit: its points, scan schedule and link.

    Parameters
    ----------
    name : str
    points : tuple of PointSpec
        Sent together, one message per scan; an RTU without points never scans (it may
        still carry commands).
    scan_period_s : float
        Time between scans [s], > 0.
    link : LinkSpec
    scan_offset_s : float
        Time of the first scan [s], ≥ 0; scans are at ``scan_offset_s + k·scan_period_s``.
    """

    name: str
    points: tuple[PointSpec, ...]
    scan_period_s: float
    link: LinkSpec
    scan_offset_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("RTUSpec.name must not be empty")
        object.__setattr__(self, "points", tuple(self.points))
        if not (math.isfinite(self.scan_period_s) and self.scan_period_s > 0):
            raise ValueError(f"RTUSpec {self.name!r}: scan_period_s must be > 0; "
                             f"found {self.scan_period_s}")
        if not (math.isfinite(self.scan_offset_s) and self.scan_offset_s >= 0):
            raise ValueError(f"RTUSpec {self.name!r}: scan_offset_s must be >= 0; "
                             f"found {self.scan_offset_s}")
        names = [p.name for p in self.points]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"RTUSpec {self.name!r}: point names must be unique; "
                             f"repeated {dupes}")

    def scan_times(self, t0_s: float, t1_s: float) -> np.ndarray:
        """Scan times in ``[t0_s, t1_s)`` [s] (none if the RTU has no points)."""
        if not self.points or t1_s <= t0_s:
            return np.empty(0)
        k0 = max(math.ceil((t0_s - self.scan_offset_s) / self.scan_period_s), 0)
        k1 = max(math.ceil((t1_s - self.scan_offset_s) / self.scan_period_s), 0)
        # One more on each side, then filter: ceil of a rounded quotient may be off by one.
        k = np.arange(max(k0 - 1, 0), k1 + 1)
        t = self.scan_offset_s + k * self.scan_period_s
        return t[(t >= t0_s) & (t < t1_s)]

    def next_scan_s(self, after_t_s: float) -> float:
        """First scan time strictly after ``after_t_s`` [s]; inf without points."""
        if not self.points:
            return math.inf
        if after_t_s < self.scan_offset_s:
            return float(self.scan_offset_s)
        k = math.floor((after_t_s - self.scan_offset_s) / self.scan_period_s)
        for kk in (k, k + 1, k + 2):  # guard against the quotient's rounding
            t = self.scan_offset_s + kk * self.scan_period_s
            if t > after_t_s:
                return t
        raise AssertionError("unreachable")


# --------------------------------------------------------------------------- results
@dataclass(slots=True)
class Measurement:
    """One point's value as delivered to the control centre.

    ``value`` is after noise and quantisation (``bool`` for boolean quantities);
    ``source_t_s`` is the scan time [s], ``delivery_t_s`` the arrival time [s].
    ``element`` is the point's grid element (:attr:`PointSpec.element`) and ``sigma``
    its noise standard deviation in the quantity's unit (:attr:`PointSpec.sigma`), so the
    receiver can place and weigh the value without the point specs.
    """

    rtu: str
    point: str
    quantity: str
    value: float | bool
    source_t_s: float
    delivery_t_s: float
    element: str = ""
    sigma: float = 0.0


@dataclass(slots=True)
class CommandOutcome:
    """How a command ended, as the control centre learns it.

    Times [s]: ``sent_t_s`` when it was handed to the link, ``applied_t_s`` when the
    device accepted it (None if it never did by ``result_t_s``), ``result_t_s`` when the
    outcome became known (acknowledgement arrival or the deadline).
    ``status`` is ``"success"``, ``"failed"`` (device refused) or ``"timeout"``.
    """

    command_id: str
    rtu: str
    target: str
    action: str
    value: object
    sent_t_s: float
    applied_t_s: float | None
    result_t_s: float
    status: Literal["success", "failed", "timeout"]
    reason: str


@dataclass(slots=True)
class LinkCounters:
    """Messages per RTU, both directions (telemetry, commands, acknowledgements).

    A loss is counted when it is decided, at sending, so ``sent − delivered − lost_random
    − lost_outage`` is the number in flight.
    """

    sent: int = 0
    delivered: int = 0
    lost_random: int = 0
    lost_outage: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "delivered": self.delivered,
                "lost_random": self.lost_random, "lost_outage": self.lost_outage}


# --------------------------------------------------------------------------- internals
def advance_env(env: simpy.Environment, t_s: float) -> None:
    """Run ``env`` up to and including ``t_s``; afterwards ``env.now == t_s``.

    ``env.run(until=t)`` stops before the events due exactly at ``t``; those are run
    here too, so an event at ``t`` is never left for the next call.
    """
    if t_s < env.now:
        raise ValueError(f"time runs forward: asked for t_s={t_s} but the environment is "
                         f"already at {env.now}")
    if t_s > env.now:
        env.run(until=t_s)
    while env.peek() <= t_s:
        env.step()


class _Draws:
    """Scalars from a generator, drawn in blocks (one numpy call per :data:`_BLOCK`)."""

    __slots__ = ("_fill", "_buf", "_i")

    def __init__(self, fill: Callable[[int], np.ndarray]):
        self._fill = fill
        self._buf: list[float] = []
        self._i = 0

    def next(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._fill(_BLOCK).tolist()
            self._i = 0
        x = self._buf[self._i]
        self._i += 1
        return x


class _Normals:
    """Standard normals in blocks, handed out as arrays of ``k``."""

    __slots__ = ("_rng", "_buf", "_i")

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self._buf = np.empty(0)
        self._i = 0

    def take(self, k: int) -> np.ndarray:
        if self._i + k > self._buf.size:
            self._buf = np.concatenate([self._buf[self._i:],
                                        self._rng.standard_normal(max(_BLOCK, k))])
            self._i = 0
        out = self._buf[self._i:self._i + k]
        self._i += k
        return out


class _Direction:
    """One direction of one link: transmitter queue, latency and loss draws."""

    __slots__ = ("latency", "loss", "loss_prob", "bits_per_s", "free_at_s")

    def __init__(self, spec: LatencySpec, link: LinkSpec, rng_latency: np.random.Generator,
                 rng_loss: np.random.Generator):
        self.latency = _Draws(lambda n: spec.sample(rng_latency, n))
        self.loss = _Draws(rng_loss.random)
        self.loss_prob = link.loss_prob
        self.bits_per_s = link.bandwidth_bps
        self.free_at_s = 0.0


class _RTU:
    """Run-time state of an RTU: its spec, precomputed point arrays, link and counters."""

    __slots__ = ("spec", "names", "quantities", "elements", "lo", "sigma", "step", "boolean",
                 "bools", "up", "down", "outages", "noise", "counters", "n_points")

    def __init__(self, spec: RTUSpec, rng: np.random.Generator):
        self.spec = spec
        pts = spec.points
        self.names = [p.name for p in pts]
        self.quantities = [p.quantity for p in pts]
        self.elements = [p.element for p in pts]
        self.n_points = len(pts)
        self.lo = np.array([p.range[0] for p in pts])
        self.sigma = np.array([p.sigma for p in pts])
        self.step = np.array([p.step for p in pts])
        self.boolean = [p.is_boolean for p in pts]
        self.bools = any(self.boolean)
        # Independent streams per purpose: a command then never shifts the telemetry's
        # noise; only its acknowledgement takes a latency and a loss draw on the uplink.
        up_lat, up_loss, down_lat, down_loss, noise = rng.spawn(5)
        self.up = _Direction(spec.link.uplink, spec.link, up_lat, up_loss)
        self.down = _Direction(spec.link.downlink, spec.link, down_lat, down_loss)
        self.noise = _Normals(noise)
        self.outages = spec.link.outages
        self.counters = LinkCounters()


class _Pending:
    """A command under way; ``done`` once its outcome is out."""

    __slots__ = ("command_id", "rtu", "target", "action", "value", "apply", "sent_t_s",
                 "deadline_s", "applied_t_s", "done")

    def __init__(self, command_id, rtu, target, action, value, apply, sent_t_s, deadline_s):
        self.command_id = command_id
        self.rtu = rtu
        self.target = target
        self.action = action
        self.value = value
        self.apply = apply
        self.sent_t_s = sent_t_s
        self.deadline_s = deadline_s
        self.applied_t_s: float | None = None
        self.done = False


# --------------------------------------------------------------------------- network
class CommNetwork:
    """RTUs and their links in a SimPy environment.

    Parameters
    ----------
    env : simpy.Environment
        Shared with other models if wanted; moved only through :meth:`advance_to` (and the
        optional ``t_s`` of :meth:`scan`, :meth:`send_command`).
    rtus : iterable of RTUSpec
        Unique names.
    rngs : dict of str to numpy.random.Generator
        One generator per RTU name, so adding an RTU does not change another's draws. Each
        is split (``Generator.spawn``) into streams for uplink latency and loss, downlink
        latency and loss, and noise.
    command_timeout_s : float
        Time after sending within which the acknowledgement must arrive [s].
    message_bytes : int
        Size of one point's data in a telemetry message, and of a command or an
        acknowledgement [bytes]; matters only on links with a bandwidth.
    """

    def __init__(self, env: simpy.Environment, rtus: Iterable[RTUSpec],
                 rngs: dict[str, np.random.Generator], command_timeout_s: float = 5.0,
                 message_bytes: int = 64):
        if not (math.isfinite(command_timeout_s) and command_timeout_s > 0):
            raise ValueError(f"CommNetwork: command_timeout_s must be > 0; "
                             f"found {command_timeout_s}")
        if not message_bytes > 0:
            raise ValueError(f"CommNetwork: message_bytes must be > 0; found {message_bytes}")
        self.env = env
        self.command_timeout_s = float(command_timeout_s)
        self.message_bytes = message_bytes
        specs = list(rtus)
        names = [r.name for r in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"CommNetwork: RTU names must be unique; repeated {dupes}")
        missing = [n for n in names if n not in rngs]
        if missing:
            raise ValueError(f"CommNetwork: expected a Generator in rngs for every RTU; "
                             f"missing {missing}")
        self.rtus: dict[str, RTUSpec] = {r.name: r for r in specs}
        self._state: dict[str, _RTU] = {r.name: _RTU(r, rngs[r.name]) for r in specs}
        self._measurements: list[Measurement] = []
        self._outcomes: list[CommandOutcome] = []

    # ------------------------------------------------------------------ time
    def scan_times(self, t0_s: float, t1_s: float) -> list[tuple[float, str]]:
        """All scans in ``[t0_s, t1_s)`` as ``(t_s, rtu_name)``, by time then RTU order."""
        out = [(float(t), i, name) for i, (name, r) in enumerate(self.rtus.items())
               for t in r.scan_times(t0_s, t1_s)]
        out.sort()
        return [(t, name) for t, _i, name in out]

    def next_scan_s(self, after_t_s: float) -> float:
        """Earliest scan of any RTU strictly after ``after_t_s`` [s]; inf if none."""
        return min((r.next_scan_s(after_t_s) for r in self.rtus.values()), default=math.inf)

    def next_event_s(self) -> float:
        """Time of the environment's next pending event [s] (inf if none)."""
        return self.env.peek()

    def advance_to(self, t_s: float) -> tuple[list[Measurement], list[CommandOutcome]]:
        """Run up to and including ``t_s``; what was delivered since the last call.

        Returns
        -------
        measurements : list of Measurement
            In delivery order (the points of one message in the RTU's order).
        outcomes : list of CommandOutcome
            In the order their results became known.
        """
        advance_env(self.env, t_s)
        measurements, self._measurements = self._measurements, []
        outcomes, self._outcomes = self._outcomes, []
        return measurements, outcomes

    def _at(self, t_s: float | None) -> float:
        if t_s is not None:
            advance_env(self.env, t_s)
        return self.env.now

    # ------------------------------------------------------------------ transport
    def _rtu(self, rtu_name: str) -> _RTU:
        try:
            return self._state[rtu_name]
        except KeyError:
            raise ValueError(f"CommNetwork: unknown RTU {rtu_name!r}; expected one of "
                             f"{list(self._state)}") from None

    def _send(self, rtu: _RTU, d: _Direction, size_bytes: int, now: float) -> float | None:
        """Hand a message to one direction of the link; its delivery time, None if lost."""
        counters = rtu.counters
        counters.sent += 1
        if d.bits_per_s is None:
            start = now
        else:
            start = now if now > d.free_at_s else d.free_at_s
            start += size_bytes * 8.0 / d.bits_per_s
            d.free_at_s = start
        delivery = start + d.latency.next()
        lost = d.loss.next() < d.loss_prob  # drawn always: outages don't shift the draws
        for w_start, w_end in rtu.outages:
            if w_start > delivery:
                break
            if now < w_end:  # journey [now, delivery] meets [w_start, w_end)
                counters.lost_outage += 1
                return None
        if lost:
            counters.lost_random += 1
            return None
        return delivery

    def _schedule(self, at_s: float, callback: Callable[[object], None]) -> None:
        Timeout(self.env, at_s - self.env.now).callbacks.append(callback)

    # ------------------------------------------------------------------ telemetry
    def scan(self, rtu_name: str, truth: dict[str, float | bool],
             t_s: float | None = None) -> float | None:
        """Scan an RTU now and send its points up the link as one message; returns the
        message's delivery time [s] (None if it is lost or the RTU has no points).

        Parameters
        ----------
        rtu_name : str
        truth : dict of str to float or bool
            True value of every point of the RTU, by point name (extra keys are ignored).
        t_s : float, optional
            Scan time [s]; the environment is first advanced to it (whatever is delivered
            on the way is returned by the next :meth:`advance_to`). Default: ``env.now``.
        """
        rtu = self._rtu(rtu_name)
        if not rtu.n_points:
            return None
        now = self._at(t_s)
        try:
            raw = [truth[name] for name in rtu.names]
        except KeyError as err:
            raise ValueError(f"CommNetwork.scan: truth for RTU {rtu_name!r} lacks point "
                             f"{err.args[0]!r}") from None
        x = np.array(raw, dtype=float)
        x += rtu.sigma * rtu.noise.take(rtu.n_points)
        # Onto the converter's grid low + k·step.
        x -= rtu.lo
        x /= rtu.step
        np.round(x, out=x)
        x *= rtu.step
        x += rtu.lo
        values = x.tolist()
        if rtu.bools:
            for i, is_bool in enumerate(rtu.boolean):
                if is_bool:
                    values[i] = bool(raw[i])
        delivery = self._send(rtu, rtu.up, self.message_bytes * rtu.n_points, now)
        if delivery is None:
            return None

        def deliver(_event: object) -> None:
            rtu.counters.delivered += 1
            name = rtu.spec.name
            self._measurements.extend(
                [Measurement(name, p, q, v, now, delivery, e, s)
                 for p, q, v, e, s in zip(rtu.names, rtu.quantities, values, rtu.elements,
                                          rtu.sigma.tolist())])

        self._schedule(delivery, deliver)
        return delivery

    # ------------------------------------------------------------------ commands
    def send_command(self, command_id: str, rtu_name: str, target: str, action: str,
                     value: object, apply: Callable[[float], bool],
                     t_s: float | None = None) -> None:
        """Send a command down an RTU's link to a device.

        Parameters
        ----------
        command_id : str
            Echoed in the outcome.
        rtu_name : str
            RTU whose link carries the command.
        target, action, value
            Echoed in the outcome; the model does not interpret them.
        apply : callable(float) -> bool
            Called with the arrival time [s] when the command reaches the device; returns
            True if the device accepted it.
        t_s : float, optional
            Send time [s]; the environment is first advanced to it. Default: ``env.now``.

        Notes
        -----
        The outcome comes out of :meth:`advance_to`; see the module's rules for timing.
        """
        rtu = self._rtu(rtu_name)
        now = self._at(t_s)
        cmd = _Pending(command_id, rtu_name, target, action, value, apply, now,
                       now + self.command_timeout_s)
        arrival = self._send(rtu, rtu.down, self.message_bytes, now)
        if arrival is None:
            self._schedule(cmd.deadline_s, lambda _e: self._finish(
                cmd, "timeout", cmd.deadline_s,
                "command lost on the way to the device; no acknowledgement"))
            return
        if arrival > cmd.deadline_s:
            self._schedule(cmd.deadline_s, lambda _e: self._finish(
                cmd, "timeout", cmd.deadline_s,
                "no acknowledgement in time: the command was still on its way "
                "(the device may apply it later)"))
        self._schedule(arrival, lambda _e: self._arrive(cmd, rtu, arrival))

    def _arrive(self, cmd: _Pending, rtu: _RTU, arrival_s: float) -> None:
        rtu.counters.delivered += 1
        accepted = bool(cmd.apply(arrival_s))
        if accepted:
            cmd.applied_t_s = arrival_s
        if cmd.done:  # timed out while in transit; the device acted all the same
            return
        ack = self._send(rtu, rtu.up, self.message_bytes, arrival_s)
        if ack is None or ack > cmd.deadline_s:
            why = "lost" if ack is None else "late"
            state = "applied" if accepted else "refused"
            self._schedule(cmd.deadline_s, lambda _e: self._finish(
                cmd, "timeout", cmd.deadline_s,
                f"acknowledgement {why}; the device had {state} the command"))
            if ack is not None:
                self._schedule(ack, lambda _e: self._ack_after_deadline(rtu))
            return

        def acknowledged(_event: object) -> None:
            rtu.counters.delivered += 1
            if accepted:
                self._finish(cmd, "success", ack, "")
            else:
                self._finish(cmd, "failed", ack, "the device refused the command")

        self._schedule(ack, acknowledged)

    def _ack_after_deadline(self, rtu: _RTU) -> None:
        rtu.counters.delivered += 1  # arrives, but the outcome is already a timeout

    def _finish(self, cmd: _Pending, status: str, t_s: float, reason: str) -> None:
        if cmd.done:
            return
        cmd.done = True
        self._outcomes.append(CommandOutcome(
            cmd.command_id, cmd.rtu, cmd.target, cmd.action, cmd.value, cmd.sent_t_s,
            cmd.applied_t_s, t_s, status, reason))  # type: ignore[arg-type]

    # ------------------------------------------------------------------ statistics
    def stats(self) -> dict[str, dict[str, int]]:
        """Message counters per RTU: ``sent``, ``delivered``, ``lost_random``,
        ``lost_outage`` (see :class:`LinkCounters`)."""
        return {name: rtu.counters.as_dict() for name, rtu in self._state.items()}
