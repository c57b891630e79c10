"""What a run tells its user besides the result: it ran smaller, it was retried, ...

A `Note` is data, a code and its parameters, so that a front end words it in its own voice and
language (the bot renders each code in `bot.messages`) and a change of wording never reaches into
the engine or the executors. `str(note)` is plain English for callers that only print it (the
CLI, logs, scripts). Notes cross process boundaries (pipes, Ray), so they hold builtins only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

NoteCode = Literal["ran_smaller", "oom_retry", "alone_after_oom", "worker_lost_retry"]
Memory = Literal["gpu", "ram"]

MEMORY_WORDS: dict[str, str] = {"gpu": "GPU memory", "ram": "memory"}

# code -> plain English, from the note's parameters
_ENGLISH: dict[str, Callable[[dict[str, Any]], str]] = {
    # The job was too large for its worker's memory budget and ran at the largest size that fits.
    "ran_smaller": lambda p: (
        f"ran at {p['size']} px instead of {p['asked']} px: not enough {MEMORY_WORDS[p['memory']]}"
    ),
    # It ran out of memory all the same and is retried once, smaller.
    "oom_retry": lambda p: f"ran out of memory at {p['size']} px; retrying at {p['smaller']} px",
    # A stack of jobs ran out of memory together; each is retried on its own.
    "alone_after_oom": lambda p: f"the batch of {p['jobs']} jobs ran out of memory; retrying this job on its own",
    # The worker died mid-job and the job is queued again.
    "worker_lost_retry": lambda p: "the worker running this job was lost; retrying",
}


@dataclass(frozen=True)
class Note:
    """One thing the user should know about a run that is not a failure.

    `params` is a tuple of (name, value) pairs so that a note stays hashable and comparable;
    read them with `note["size"]` or `note.args`.
    """

    code: NoteCode
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, code: NoteCode, **params: Any) -> Note:
        if code not in _ENGLISH:
            raise ValueError(f"unknown note code {code!r}")
        return cls(code, tuple(sorted(params.items())))

    @property
    def args(self) -> dict[str, Any]:
        return dict(self.params)

    def __getitem__(self, name: str) -> Any:
        return self.args[name]

    def __str__(self) -> str:
        render = _ENGLISH.get(self.code)
        if render is not None:
            return render(self.args)
        # A code this version does not know (a newer worker, e.g. on a Ray node): say what there is.
        detail = ", ".join(f"{k} {v}" for k, v in self.params)
        return self.code.replace("_", " ") + (f" ({detail})" if detail else "")


CODES: tuple[str, ...] = tuple(_ENGLISH)

__all__ = ["CODES", "MEMORY_WORDS", "Memory", "Note", "NoteCode"]
