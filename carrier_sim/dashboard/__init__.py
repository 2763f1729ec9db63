"""What a person watches during a run: the live terminal dashboard, or a plain progress line without a terminal."""

from carrier_sim.dashboard.live import (
    FUNNEL_STEPS,
    RATE_WINDOW,
    VIEWS,
    CarrierStatus,
    Controls,
    Dashboard,
    DashboardState,
    Display,
    PlainProgress,
    choose_display,
    progress_line,
    render,
    running,
)

__all__ = [
    "FUNNEL_STEPS",
    "RATE_WINDOW",
    "VIEWS",
    "CarrierStatus",
    "Controls",
    "Dashboard",
    "DashboardState",
    "Display",
    "PlainProgress",
    "choose_display",
    "progress_line",
    "render",
    "running",
]
