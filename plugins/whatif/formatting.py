"""How numbers read in every text whatif writes (reports, Confluence, the template's prose)."""

from __future__ import annotations


def percent(p: float) -> str:
    """A probability as people read it: '64%', '3.4%', and two significant figures below
    0.1 % ('0.042%'), never a '0.0%' that hides a real if small chance."""
    if p <= 0:
        return "0%"
    if p < 0.001:
        return f"{p * 100:.2g}%"
    return f"{p * 100:.1f}%" if p < 0.1 else f"{p * 100:.0f}%"
