"""A soak test of the whole bot: the real bot process, its real worker processes and the real
discord.py client against `fakediscord`, under concurrent load, hostile uploads, cancels, worker
faults, strict rate limits and a restart, with everything audited afterwards.

`run_soak(SoakParams)` is the one entry point; `tests/test_soak.py` runs the CI-sized profile and
`make soak` the long one (see `params`). A run is reproducible from its seed (printed in the
summary; `SOAK_SEED=<n>` replays it, up to the timing of the processes involved).
"""

from soak.params import SoakParams
from soak.runner import SoakResult, run_soak

__all__ = ["SoakParams", "SoakResult", "run_soak"]
