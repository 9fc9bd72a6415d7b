"""Compiled inner loop of the simulated horizons (numba).

Why compiled: 100,000 horizons of a 5,000-service fleet hold ~36 million root failures. Any
numpy formulation materialises several arrays of that length (gaps, counts, modes, bank
picks) and pays ~0.1-0.4 s per pass over them; this loop draws each root failure and folds it
into the per-horizon totals at once, without keeping it. Imported only by the simulate stage
(numba costs ~0.15 s to import, and the first call compiles for ~1 s unless numba's on-disk
cache next to this file already holds the machine code).

Random numbers come from the numpy Generator passed in (numba reads its bit generator), so a
seed gives the same horizons every time; the caller gives each chunk of services its own
spawned Generator, which keeps the result independent of how many threads run the chunks.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

NO_SEVERITY = 127  # a horizon without any root failure


# Two entry points, compiled apart, with the arguments of _horizons_chunk but `record`: the
# loop that keeps nothing carries no trace of the record keeping (~20 % faster).


@njit(cache=True, nogil=True)
def horizons_chunk(
    first: int,
    last: int,
    p_any: np.ndarray,
    shape: np.ndarray,
    p_nb: np.ndarray,
    mode_cdf: np.ndarray,
    blast: np.ndarray,
    severity: np.ndarray,
    bank_size: int,
    horizons: int,
    rng: np.random.Generator,
    shuffle_rng: np.random.Generator,
):
    """_horizons_chunk without keeping the root failures."""
    return _horizons_chunk(
        first, last, p_any, shape, p_nb, mode_cdf, blast, severity, bank_size, horizons, rng,
        shuffle_rng, False,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def horizons_chunk_recorded(
    first: int,
    last: int,
    p_any: np.ndarray,
    shape: np.ndarray,
    p_nb: np.ndarray,
    mode_cdf: np.ndarray,
    blast: np.ndarray,
    severity: np.ndarray,
    bank_size: int,
    horizons: int,
    rng: np.random.Generator,
    shuffle_rng: np.random.Generator,
):
    """_horizons_chunk keeping every root failure (checks, benchmark)."""
    return _horizons_chunk(
        first, last, p_any, shape, p_nb, mode_cdf, blast, severity, bank_size, horizons, rng,
        shuffle_rng, True,
    )  # fmt: skip


@njit(inline="always", nogil=True)
def _horizons_chunk(
    first: int,
    last: int,
    p_any: np.ndarray,
    shape: np.ndarray,
    p_nb: np.ndarray,
    mode_cdf: np.ndarray,
    blast: np.ndarray,
    severity: np.ndarray,
    bank_size: int,
    horizons: int,
    rng: np.random.Generator,
    shuffle_rng: np.random.Generator,
    record: bool,
):
    """The root failures of services [first, last) in `horizons` horizons, folded into totals.

    Per service s, the horizons with at least one root failure are a Bernoulli process with
    probability p_any[s]: the gaps between them are geometric, floor(E / -log(1 - p)) with E
    exponential (numba's ziggurat, cheaper than a logarithm), so only failures cost anything.
    Each such horizon's count is the negative binomial NB(shape[s], p_nb[s]) conditioned on
    >= 1 (inverse CDF by the pmf recurrence; most counts are 1). Each root failure's outcome
    (blast radius, severity index) is one of the service's `bank_size` simulated cascades,
    picked uniformly; its mode comes from the row mode_cdf[s]. The modes matter only for the
    per-(service, mode) frequencies: for the horizons with one failure (most), they are drawn
    at the end as one multinomial split of their number, the same law as a categorical draw
    each at a fraction of the cost; a horizon with several failures draws each one's mode.

    Returns per horizon the root failures, the services hit (sum of blast radii) and the worst
    severity index (NO_SEVERITY without any); per (service, mode) the horizons in which that
    pair failed at least once; the root failures that shared their service and horizon with
    another; and, when `record`, each root failure's (horizon, service, mode, bank row) for
    checks and benchmarks (empty otherwise; the modes of single failures are the multinomial's,
    assigned to them in an order shuffled with `shuffle_rng`, which nothing else uses, so that
    recording changes no other draw).
    """
    services, modes = mode_cdf.shape
    roots = np.zeros(horizons, np.int32)
    hit = np.zeros(horizons, np.int32)
    worst = np.full(horizons, NO_SEVERITY, np.int8)
    frequency = np.zeros(services * modes, np.int64)
    split = np.zeros(modes, np.int64)
    repeated = 0
    capacity = 1024 if record else 0
    kept = 0
    log = np.empty((capacity, 4), np.int64)
    for s in range(first, last):
        p = p_any[s]
        if p <= 0.0:
            continue
        mean_gap = -1.0 / math.log1p(-min(p, 1.0 - 1e-12))
        q = p_nb[s]
        k_shape = shape[s]
        none = q**k_shape  # P(count = 0)
        first_mass = k_shape * (1.0 - q) * none  # P(count = 1)
        above = 1.0 - none
        total_mode = mode_cdf[s, modes - 1]
        singles = 0
        service_start = kept
        at = 0
        while True:
            gap = rng.standard_exponential() * mean_gap  # geometric gap - 1, floored below
            if gap >= horizons - at:  # compared as a float: a tiny p gives a huge gap
                break
            at += 1 + int(gap)
            h = at - 1
            # The count, by inverse CDF above P(0). Uniforms are recycled: given the interval
            # u fell in, its position within it is again uniform and independent of which
            # interval that was, so one draw decides the count and then the first failure's
            # bank row (and mode) (each step spends a few of its 53 bits; the bank row needs
            # 11 for 2,000 cascades).
            u = rng.random() * above
            count, pmf, low = 1, first_mass, 0.0
            while u >= low + pmf and count < 10_000:
                low += pmf
                pmf *= (count + k_shape) / (count + 1) * (1.0 - q)
                count += 1
            u = min(max((u - low) / pmf, 0.0), 1.0 - 1e-16) if pmf > 0.0 else rng.random()
            if count == 1:
                singles += 1
                row = s * bank_size + min(int(u * bank_size), bank_size - 1)
                _fold(roots, hit, worst, blast, severity, h, row)
                if record:
                    log, capacity = _keep(log, kept, capacity, h, s, -1, row)
                    kept += 1
                continue
            repeated += count
            seen = 0  # bit m: mode m failed in this horizon
            for k in range(count):
                v = (u if k == 0 else rng.random()) * total_mode
                m = 0
                for j in range(modes - 1):  # without branches (the cdf is sorted): a
                    m += v >= mode_cdf[s, j]  # mispredicted one costs more than the sum
                floor_m = mode_cdf[s, m - 1] if m > 0 else 0.0
                seen |= 1 << m
                width = mode_cdf[s, m] - floor_m
                w = (v - floor_m) / width if width > 0.0 else rng.random()
                row = s * bank_size + min(int(w * bank_size), bank_size - 1)
                _fold(roots, hit, worst, blast, severity, h, row)
                if record:
                    log, capacity = _keep(log, kept, capacity, h, s, m, row)
                    kept += 1
            for m in range(modes):
                if seen >> m & 1:
                    frequency[s * modes + m] += 1
        # The modes of the single-failure horizons: Multinomial(singles, mix) by conditional
        # binomials.
        remaining, mass = singles, total_mode
        for m in range(modes):
            share = mode_cdf[s, m] - (mode_cdf[s, m - 1] if m > 0 else 0.0)
            if m == modes - 1 or remaining == 0:
                drawn = remaining if m == modes - 1 else 0
            else:
                drawn = rng.binomial(remaining, min(1.0, share / mass)) if mass > 0.0 else 0
            split[m] = drawn
            frequency[s * modes + m] += drawn
            remaining -= drawn
            mass -= share
        if record and singles:
            _assign_modes(log, service_start, kept, split, shuffle_rng)
    return roots, hit, worst, frequency, repeated, log[:kept].copy()


@njit(inline="always", nogil=True)
def _fold(roots, hit, worst, blast, severity, h, row):  # type: ignore[no-untyped-def]
    """One root failure's outcome into its horizon's totals."""
    roots[h] += 1
    hit[h] += blast[row]
    if severity[row] < worst[h]:
        worst[h] = severity[row]


@njit(inline="always", nogil=True)
def _keep(log, kept, capacity, h, s, m, row):  # type: ignore[no-untyped-def]
    """Row `kept` of the record, growing it when full: (log, capacity)."""
    if kept == capacity:
        grown = np.empty((2 * capacity, 4), np.int64)
        grown[:kept] = log[:kept]
        log, capacity = grown, 2 * capacity
    log[kept, 0], log[kept, 1], log[kept, 2], log[kept, 3] = h, s, m, row
    return log, capacity


@njit(nogil=True)
def _assign_modes(log, start, stop, split, shuffle_rng):  # type: ignore[no-untyped-def]
    """Give the recorded single failures of one service (mode -1 in log[start:stop]) the
    multinomial's modes, in a shuffled order."""
    modes = np.empty(split.sum(), np.int64)
    at = 0
    for m in range(len(split)):
        modes[at : at + split[m]] = m
        at += split[m]
    for i in range(len(modes) - 1, 0, -1):  # Fisher-Yates
        j = int(shuffle_rng.random() * (i + 1))
        modes[i], modes[j] = modes[j], modes[i]
    at = 0
    for i in range(start, stop):
        if log[i, 2] == -1:
            log[i, 2] = modes[at]
            at += 1
