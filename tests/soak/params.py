"""What a soak run does, as numbers: one dataclass, two profiles, overrides from the environment.

The CI profile fits in the normal suite (tiny images, few steps, a short job timeout so a stopped
worker is caught in seconds); the `full` profile (`make soak`) is the same code with more members,
more jobs and a time budget in minutes.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SoakParams:
    seed: int
    members: int = 5  # simulated members; every other one is also in the second server
    actions_per_member: int = 4  # requests each member makes (without `minutes`; then it is the time)
    minutes: float | None = None  # keep making requests until this much time has passed (full profile)
    hostile_share: float = 0.25  # share of requests that carry a bad or hostile image
    cancel_share: float = 0.3  # share of accepted jobs their owner then cancels at a random moment
    sizes: tuple[int, int] = (32, 64)  # long side of the outputs, px (inclusive range)
    steps: tuple[int, int] = (4, 10)  # optimisation steps per job (inclusive range)
    workers: int = 2  # the bot's worker processes
    job_timeout: float = 20.0  # seconds a job attempt may run: also how soon a stopped worker is caught
    max_jobs_per_member: int = 3  # queued + running per member across servers (the operator's cap)
    shutdown_grace: float = 1.0  # seconds running jobs get to finish on SIGTERM before they are paused
    edit_interval: float = 0.3  # seconds between progress edits of one message
    preview_interval: float = 0.5  # seconds between preview uploads (these count against the upload limit)
    upload_limit: tuple[int, float] = (2, 5.0)  # the fake's upload sub-limit: requests with files per window
    forced_429s: int = 4  # extra 429s the fake sends on edit routes at random moments
    settle_timeout: float = 150.0  # seconds the accepted jobs get to end once the requests stop
    timeout: float = 180.0  # the whole run (pytest-timeout): the CI profile must fit in 3 minutes

    @classmethod
    def ci(cls, seed: int) -> SoakParams:
        return cls(seed=seed)

    @classmethod
    def full(cls, seed: int) -> SoakParams:
        return cls(
            seed=seed,
            members=10,
            minutes=10.0,
            sizes=(48, 96),
            steps=(10, 40),
            job_timeout=120.0,
            max_jobs_per_member=4,
            forced_429s=20,
            settle_timeout=600.0,
            timeout=1800.0,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SoakParams:
        """`SOAK_PROFILE` (ci | full), `SOAK_SEED` (random when unset; printed so it can be replayed)
        and `SOAK_<FIELD>` for any numeric field, e.g. `SOAK_MEMBERS=20 SOAK_MINUTES=30`."""
        env = os.environ if environ is None else environ
        seed = int(env.get("SOAK_SEED") or random.SystemRandom().randrange(1, 2**31))
        profile = env.get("SOAK_PROFILE", "ci").strip().lower()
        if profile not in ("ci", "full"):
            raise ValueError(f"SOAK_PROFILE must be ci or full, got {profile!r}")
        params = cls.ci(seed) if profile == "ci" else cls.full(seed)
        changes = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"SOAK_{f.name.upper()}")
            if raw is None or f.name == "seed":
                continue
            current = getattr(params, f.name)
            if isinstance(current, tuple):
                changes[f.name] = tuple(type(v)(x) for v, x in zip(current, raw.split(","), strict=True))
            elif f.name == "minutes":
                changes[f.name] = float(raw) if raw.strip() else None
            else:
                changes[f.name] = type(current)(raw)
        return dataclasses.replace(params, **changes)
