"""What a soak run must show, checked from the outside: the fake's messages and recorded requests,
the bot's database after it exited, its memory as sampled from /proc, and the rate-limit audit.

- Every request was answered where its member can see it; no bad or hostile image became a job,
  and each was refused with the reason the bot's own image checks give.
- Every accepted job ended exactly once: one message shows its end (done with the picture, failed
  or cancelled), it agrees with the job's row, and no second end was ever sent for it.
- The database holds a row for every job members saw and nothing else, none still active, and
  stored inputs exactly where the retention rules keep them (done jobs; never failed or cancelled).
- The bot process stayed under 1 GB and did not grow by more than 100 MB from the first to the
  last quarter of the run (per process, and across the restart).
- No 429 was ignored: see `dishonoured` below for what that can mean on a shared channel bucket.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fakediscord import FakeDiscord, RateLimitReport, RecordedRequest
from fakediscord.ratelimits import EARLY_GRACE

from bot import messages
from bot.bot import SHUTDOWN_MARGIN
from bot.config import BotConfig
from soak.botproc import BotProcess, Sample
from soak.faults import FaultLog
from soak.members import LIMIT_REFUSAL, Load, describe
from soak.params import SoakParams
from soak.world import JOB_ID, PAUSED, TERMINAL, terminal_kind

MiB = 2**20
RSS_LIMIT = 1024 * MiB
RSS_GROWTH_LIMIT = 100 * MiB
# Seconds past the shutdown grace a SIGTERM may take: the bot's own budget past the grace, and
# time for the interpreter and its workers to end on a CPU the soak keeps busy.
EXIT_SLACK = SHUTDOWN_MARGIN + 10.0
_HOOK_EDIT = re.compile(r"/webhooks/\d+/[^/]+/messages/(@original|\d+)")
_CHANNEL_EDIT = re.compile(r"/channels/\d+/messages/(\d+)")


def _prefix(text: str, marker: str) -> str:
    return text.partition(marker)[0]


# Refusals any request may get whatever its images (limits, a restart, a full queue): the start
# of each as bot.messages words it.
ADMISSION_REFUSALS = {
    "limit": LIMIT_REFUSAL,
    "restarting": messages.RESTARTING,
    "queue_full": _prefix(messages.queue_full("\0"), "\0"),
}


def admission_refusal(answer: str) -> str | None:
    return next((name for name, start in ADMISSION_REFUSALS.items() if answer.startswith(start)), None)


def cancel_answers(job_id: str) -> set[str]:
    states = (None, *TERMINAL)  # an answer names how the job ended, never a state it was in
    return {messages.cancelling(job_id), *(messages.already_finished(job_id, s) for s in states)}


def message_id_of(r: RecordedRequest) -> int | None:
    """The message a successful create or edit wrote."""
    edit = _CHANNEL_EDIT.fullmatch(r.path)
    if r.method == "PATCH" and edit:
        return int(edit.group(1))
    if isinstance(r.response, dict) and "id" in r.response and (r.method == "POST" or _HOOK_EDIT.fullmatch(r.path)):
        return int(r.response["id"])
    return None


def _signature(r: RecordedRequest) -> tuple[Any, ...]:
    """A request as discord.py would send it again (multipart boundaries differ between tries)."""
    return (r.method, r.path, json.dumps(r.json, sort_keys=True), tuple(f.data for f in r.files))


def quarters_growth(samples: list[Sample]) -> float:
    """Most RSS in the last quarter of the samples' time span minus the most in the first quarter."""
    if len(samples) < 4:
        return 0.0
    start, end = samples[0].at, samples[-1].at
    quarter = (end - start) / 4
    first = [s.rss for s in samples if s.at <= start + quarter]
    last = [s.rss for s in samples if s.at >= end - quarter]
    return float(max(last) - max(first))


@dataclass
class Audit:
    params: SoakParams
    fd: FakeDiscord
    load: Load
    bot: BotProcess
    report: RateLimitReport
    jobs: dict[str, dict[str, Any]]  # the database's rows by job id
    inputs: dict[str, int]  # stored input bytes by job id
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def fail(self, text: str) -> None:
        self.problems.append(text)

    def check(self, faults: FaultLog) -> None:
        self.check_requests()
        self.check_jobs()
        self.check_database()
        self.check_cancels()
        self.check_faults(faults)
        self.check_memory()
        self.check_rate_limits()
        self.check_logs()

    # -- requests -------------------------------------------------------------------------------

    def check_requests(self) -> None:
        kinds: Counter[str] = Counter()
        for a in self.load.attempts:
            where = f"{a.member}'s {a.flow} request in the {a.server} server"
            if a.hostile is not None:
                where += f" with a {a.hostile.kind} {a.what}"
            if a.error is not None:
                self.fail(f"{where} could not be made: {a.error}")
                kinds["not sent"] += 1
                continue
            if a.answer is None:
                self.fail(f"{where} was never answered ({describe(self.fd, a)})")
                kinds["unanswered"] += 1
                continue
            refusal = admission_refusal(a.answer)
            if a.hostile is not None:
                assert a.what is not None
                if a.job_id is not None:
                    self.fail(f"{where} became job {a.job_id}")
                elif refusal is None and a.answer != a.hostile.refusal(a.what):
                    self.fail(f"{where} was refused with {a.answer!r}, not {a.hostile.refusal(a.what)!r}")
                kinds["hostile refused" if refusal is None else f"hostile refused ({refusal})"] += 1
            elif a.job_id is not None:
                kinds["accepted"] += 1
            elif refusal is None:
                self.fail(f"{where} got {a.answer!r}")
                kinds["other"] += 1
            else:
                kinds[f"refused ({refusal})"] += 1
        self.facts["requests"] = dict(kinds)
        self.facts["flows"] = dict(Counter(a.flow for a in self.load.attempts))

    # -- jobs -----------------------------------------------------------------------------------

    def _sent_ends(self) -> dict[str, list[tuple[int, str]]]:
        """Per job id, (message id, end) of every successful request that showed the job's end."""
        ends: dict[str, list[tuple[int, str]]] = {}
        for r in self.fd.requests:
            if not r.api or r.method not in ("POST", "PATCH") or r.status is None or not 200 <= r.status < 300:
                continue
            content = (r.json or {}).get("content") if isinstance(r.json, dict) else None
            found = JOB_ID.search(content or "")
            kind = terminal_kind(content or "")
            mid = message_id_of(r)
            if found and kind and mid is not None:
                ends.setdefault(found.group(1), []).append((mid, kind))
        return ends

    def check_jobs(self) -> None:
        view = self.load.view
        shown = view.messages_by_job()
        seen_ever = {
            JOB_ID.search(m.content).group(1)  # type: ignore[union-attr]
            for m in view.bot_messages(include_deleted=True)
            if JOB_ID.search(m.content)
        }
        accepted = {a.job_id for a in self.load.attempts if a.job_id}
        for job in sorted(accepted - set(self.jobs)):
            self.fail(f"job {job} was shown to its member but has no row")
        for job in sorted(set(self.jobs) - seen_ever):
            self.fail(f"job {job} has a row ({self.jobs[job]['state']}) but no member ever saw it")
        ends = self._sent_ends()
        outcomes: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        resumed = 0
        for job, row in sorted(self.jobs.items()):
            state = row["state"]
            outcomes[state] += 1
            if state == "failed":
                reasons[str(row["error"] or "").split(":")[0]] += 1
            finals = [m for m in shown.get(job, []) if terminal_kind(m.content)]
            if state not in TERMINAL:
                self.fail(f"job {job} is still {state} after the run")
                continue
            if len(finals) != 1:
                self.fail(f"job {job} ({state}) has {len(finals)} messages showing its end")
            for m in finals:
                if terminal_kind(m.content) != state:
                    self.fail(f"job {job} is {state} in the database but its message says {m.content[:60]!r}")
                if state == "done" and not m.attachments:
                    self.fail(f"job {job} is done but its message carries no picture")
            sent = ends.get(job, [])
            if len({mid for mid, _ in sent}) > 1 or len({kind for _, kind in sent}) > 1:
                self.fail(f"job {job} was ended more than once: {sent}")
            if any(PAUSED in rev.get("content", "") for m in shown.get(job, []) for rev in m.revisions):
                resumed += 1
        self.facts["jobs"] = len(self.jobs)
        self.facts["outcomes"] = dict(outcomes)
        self.facts["failure reasons"] = dict(reasons)
        self.facts["resumed after restart"] = resumed

    # -- database -------------------------------------------------------------------------------

    def check_database(self) -> None:
        config = BotConfig()
        for job in sorted(set(self.inputs) - set(self.jobs)):
            self.fail(f"stored inputs of job {job}, which has no row")
        total = sum(self.inputs.values())
        by_owner: Counter[int] = Counter()
        for job, n in self.inputs.items():
            if job in self.jobs:
                by_owner[self.jobs[job]["owner_id"]] += n
        if total > config.inputs_max_bytes or any(n > config.inputs_max_bytes_per_member for n in by_owner.values()):
            self.fail(f"stored inputs exceed the caps: {total} bytes, per member {dict(by_owner)}")
        # Under the caps and within the TTL the rules keep exactly the inputs of done jobs.
        for job, row in sorted(self.jobs.items()):
            kept = job in self.inputs
            if row["state"] == "done" and not kept:
                self.fail(f"job {job} is done but its inputs are gone (the result buttons would not work)")
            if row["state"] != "done" and kept:
                self.fail(f"job {job} is {row['state']} but its inputs are still stored")
        self.facts["stored inputs"] = f"{len(self.inputs)} jobs, {total / MiB:.2f} MB"

    # -- cancels --------------------------------------------------------------------------------

    def check_cancels(self) -> None:
        kinds: Counter[str] = Counter()
        for c in self.load.cancels:
            if not c.sent:
                kinds["not sent (" + (c.note or "?") + ")"] += 1
                continue
            if c.answer is None:
                self.fail(f"the {c.how} cancel of job {c.job_id} was never answered")
            elif c.answer not in cancel_answers(c.job_id):
                self.fail(f"the {c.how} cancel of job {c.job_id} got {c.answer!r}")
            kinds[f"{c.how} at {c.moment}"] += 1
        if not any(c.sent for c in self.load.cancels):
            self.fail("no cancel reached the bot: cancelling was not exercised")
        self.facts["cancels"] = dict(kinds)

    # -- faults ---------------------------------------------------------------------------------

    def check_faults(self, faults: FaultLog) -> None:
        if not faults.kills or not faults.kill_landed:
            self.fail(f"no worker was SIGKILLed mid-job ({'; '.join(faults.notes) or 'no kill'})")
        if not faults.stops or not faults.stop_landed:
            self.fail(f"no SIGSTOPped worker was caught by the job timeout ({'; '.join(faults.notes) or 'no stop'})")
        if faults.restarts != 1:
            self.fail(f"the bot was restarted {faults.restarts} times, not once")
        if not sum(faults.in_flight_at_restart.values()):
            self.fail("no job was queued or running when the bot was restarted")
        for i, (rc, took) in enumerate(self.bot.exits, 1):
            if rc != 0:
                self.fail(f"bot process {i} exited with {rc} on SIGTERM")
            if took > self.params.shutdown_grace + EXIT_SLACK:
                self.fail(f"bot process {i} took {took:.1f} s to exit after SIGTERM")
        self.facts["exits"] = [f"rc {rc} in {took:.1f} s" for rc, took in self.bot.exits]

    # -- memory ---------------------------------------------------------------------------------

    def _running_samples(self, incarnation: int) -> list[Sample]:
        start = self.bot.ready_at.get(incarnation, float("inf"))
        stop = self.bot.stop_at.get(incarnation, float("inf"))
        return [s for s in self.bot.samples if s.incarnation == incarnation and start <= s.at <= stop]

    def check_memory(self) -> None:
        samples = self.bot.samples
        if not samples:
            self.fail("the bot's memory was never sampled")
            return
        peak = max(s.hwm for s in samples)
        if peak >= RSS_LIMIT:
            self.fail(f"the bot's peak RSS was {peak / MiB:.0f} MB (limit {RSS_LIMIT / MiB:.0f} MB)")
        growths = {}
        for incarnation in sorted({s.incarnation for s in samples}):
            growths[f"process {incarnation}"] = quarters_growth(self._running_samples(incarnation))
        running = [s for i in sorted(self.bot.ready_at) for s in self._running_samples(i)]
        growths["whole run"] = quarters_growth(running)
        for what, grew in growths.items():
            if grew > RSS_GROWTH_LIMIT:
                self.fail(f"the bot's RSS grew by {grew / MiB:.0f} MB from the first to the last quarter ({what})")
        self.facts["peak RSS"] = f"{peak / MiB:.0f} MB"
        self.facts["RSS growth"] = ", ".join(f"{k} {v / MiB:+.1f} MB" for k, v in growths.items())

    # -- rate limits ----------------------------------------------------------------------------

    def check_rate_limits(self) -> None:
        """Every dishonoured request is judged: the same request sent again before the retry_after
        of its own earlier 429 is a bug anywhere; any dishonoured request on an interaction token's
        routes is a bug, because discord.py sends those one at a time; on a channel's bot-token
        buckets one request can overtake another that was just refused, or reach the bucket after
        its own wait but before a later reset announced to another request (fakediscord's README,
        "Rate limits"): counted, but not the bot ignoring a 429."""
        refused: dict[tuple[Any, ...], list[Any]] = {}  # signature -> the limiter's 429 events for it
        overtaken = 0
        for r in self.fd.requests:
            if not r.api or r.status != 429:
                continue
            event = self._event_of(r)
            if event is None:
                continue
            sig = _signature(r)
            earlier = refused.setdefault(sig, [])
            too_soon = [e for e in earlier if event.at < e.at + e.retry_after - EARLY_GRACE]
            earlier.append(event)
            if too_soon:
                waited, told = event.at - too_soon[-1].at, too_soon[-1].retry_after
                self.fail(f"{r.method} {r.path} was sent again {waited:.2f} s after a 429 that said {told:g} s")
            elif event.reason != "dishonoured":
                continue
            elif r.path.startswith(("/webhooks/", "/interactions/")):
                self.fail(f"{r.method} {r.path} reached a rate-limited interaction bucket before its reset")
            else:
                overtaken += 1
        rep = self.report
        forced = sum(b.forced for b in rep.buckets.values())
        exhausted = sum(b.exhausted for b in rep.buckets.values())
        if rep.sent_429 == 0:
            self.fail("the fake sent no 429 at all: the rate-limit handling was not exercised")
        self.facts["429s"] = (
            f"{rep.sent_429} sent ({exhausted} bucket full, {forced} forced, {rep.dishonoured} dishonoured "
            f"of which {overtaken} on a shared channel bucket)"
        )

    def _event_of(self, r: RecordedRequest) -> Any:
        """The limiter's record of the 429 that answered `r`: the latest for its route and bucket
        at or before `r.at` (the limiter stamps a 429 with the request's arrival, just before)."""
        best = None
        for e in self.report.events:
            if e.method == r.method and e.path == r.path and e.bucket == r.rate_limited and e.at <= r.at:
                best = e
        return best

    # -- logs -----------------------------------------------------------------------------------

    def check_logs(self) -> None:
        lines = self.bot.lines
        errors = [line for line in lines if " ERROR " in line or " CRITICAL " in line]
        tracebacks = sum(1 for line in lines if line.startswith("Traceback"))
        self.facts["bot log"] = f"{len(lines)} lines, {len(errors)} errors, {tracebacks} tracebacks"
        self.facts["log errors"] = errors[:10]
        for line in lines:
            if "Task exception was never retrieved" in line or "Unclosed" in line:
                self.fail(f"the bot logged {line.strip()[:160]!r}")

    # -- summary --------------------------------------------------------------------------------

    def summary(self, faults: FaultLog) -> str:
        p = self.params
        rows = [
            ("seed", f"{p.seed}  (replay: SOAK_SEED={p.seed})"),
            ("members / servers", f"{p.members} / 2, workers {p.workers}, job timeout {p.job_timeout:g} s"),
            ("requests", _fmt(self.facts.get("requests", {}))),
            ("  by flow", _fmt(self.facts.get("flows", {}))),
            ("jobs accepted", str(self.facts.get("jobs", 0))),
            ("  outcomes", _fmt(self.facts.get("outcomes", {}))),
            ("  failures by reason", _fmt(self.facts.get("failure reasons", {}))),
            ("  resumed after restart", str(self.facts.get("resumed after restart", 0))),
            ("cancels", _fmt(self.facts.get("cancels", {}))),
            (
                "faults",
                f"SIGKILL {len(faults.kills)} (landed: {faults.kill_landed}), "
                f"SIGSTOP {len(faults.stops)} (caught: {faults.stop_landed}), restarts {faults.restarts} "
                f"with {_fmt(faults.in_flight_at_restart)} in flight",
            ),
            ("bot exits", ", ".join(self.facts.get("exits", []))),
            ("peak RSS", str(self.facts.get("peak RSS", "?"))),
            ("RSS growth", str(self.facts.get("RSS growth", "?"))),
            ("429s", str(self.facts.get("429s", "?"))),
            ("stored inputs", str(self.facts.get("stored inputs", "?"))),
            ("bot log", str(self.facts.get("bot log", "?"))),
            ("problems", str(len(self.problems))),
        ]
        width = max(len(k) for k, _ in rows)
        out = ["soak summary", "-" * 80] + [f"{k:<{width}}  {v}" for k, v in rows]
        out += [f"  {t:6.1f} s  {text}" for t, text in self.load.timeline]
        out += [f"  log: {line[:150]}" for line in self.facts.get("log errors", [])]
        out += [f"  PROBLEM: {text}" for text in self.problems[:40]]
        return "\n".join(out)


def _fmt(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
