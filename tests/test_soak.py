"""The soak test: the real bot process under members, hostile uploads, cancels, worker faults, strict
rate limits and a restart, audited afterwards (see `tests/soak/`).

This CI-sized run is part of the normal suite; deselect it with `-m "not soak"`. `make soak` runs
the long profile (`SOAK_PROFILE=full`); `SOAK_SEED=<n>` replays a run whose summary printed that seed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from soak import SoakParams, run_soak

PARAMS = SoakParams.from_env()

pytestmark = [pytest.mark.soak, pytest.mark.timeout(PARAMS.timeout)]


async def test_the_bot_holds_up_under_load_faults_and_a_restart(tmp_path: Path) -> None:
    result = await run_soak(PARAMS, tmp_path)
    print("\n" + result.summary())
    print(f"bot log: {result.log_path}")
    assert not result.problems, "\n".join(result.problems[:40])
