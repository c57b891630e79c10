"""The fake Discord the soak runs in, and what its messages say about each job.

Two servers with the bot in both: the fake's own "Fake Guild" (#general) and "Second Server"
(#art); members are spread over both and some are in both, so the operator's per-member cap
across servers is exercised. `JobView` reads the bot's messages as a member would: a job is
known by the id in its footer, and its state is whatever its message shows now.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from fakediscord import Channel, FakeDiscord, Member, Message, Perm

JOB_ID = re.compile(r"job `([0-9a-f]+)`")
# What a job's message shows at its end (bot.messages: done, failed, cancelled), and while it waits.
TERMINAL = {"done": "**Done**", "failed": "**Failed**", "cancelled": "**Cancelled**"}
RUNNING = ("**Stylizing**", "**Starting…**")
QUEUED = "**Queued**"
PAUSED = "**Paused**"


@dataclass
class Server:
    name: str
    channel: Channel
    members: list[Member] = field(default_factory=list)


@dataclass
class SoakMember:
    """One simulated person: the same user in one or two servers."""

    name: str
    places: list[tuple[Server, Member]]


def build_world(fd: FakeDiscord, members: int) -> tuple[list[Server], list[SoakMember]]:
    """Before the bot starts: the second server (so it arrives with READY) and the members."""
    st = fd.state
    second = st.add_guild("Second Server", fd.owner)
    role = st.add_role(second, "StyleBot", Perm.BOT_DEFAULT, bot_id=st.bot_user.id)
    st.add_member(second, st.bot_user, [role])
    servers = [Server("first", fd.channel), Server("second", st.add_channel("art", guild=second))]
    people = []
    for i in range(members):
        user = st.add_user(f"member{i}", global_name=f"Member {i}")
        homes = [servers[i % 2]] if i % 2 == 0 else servers  # odd members are in both servers
        places = []
        for server in homes:
            guild = st.guild_of(server.channel)
            assert guild is not None
            member = st.add_member(guild, user)
            server.members.append(member)
            places.append((server, member))
        people.append(SoakMember(user.username, places))
    return servers, people


def terminal_kind(content: str) -> str | None:
    return next((kind for kind, mark in TERMINAL.items() if mark in content), None)


class JobView:
    """The jobs as members see them: every bot message that names a job, by job id."""

    def __init__(self, fd: FakeDiscord) -> None:
        self.fd = fd

    def bot_messages(self, *, include_deleted: bool = False) -> Iterable[Message]:
        bot_id = self.fd.bot_user.id
        for m in list(self.fd.state.messages.values()):
            if m.author.id == bot_id and not m.ephemeral and (include_deleted or not m.deleted):
                yield m

    def messages_by_job(self) -> dict[str, list[Message]]:
        out: dict[str, list[Message]] = {}
        for m in self.bot_messages():
            found = JOB_ID.search(m.content)
            if found:
                out.setdefault(found.group(1), []).append(m)
        return out

    def state_of(self, job_id: str) -> str | None:
        """What the job's messages show now: a terminal kind, "running", "queued", "paused" or None."""
        shown = None
        for m in self.messages_by_job().get(job_id, []):
            kind = terminal_kind(m.content)
            if kind:
                return kind
            if any(mark in m.content for mark in RUNNING):
                shown = "running"
            elif shown is None:
                shown = "paused" if PAUSED in m.content else "queued" if QUEUED in m.content else shown
        return shown

    def states(self) -> dict[str, str | None]:
        return {job: self.state_of(job) for job in self.messages_by_job()}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for state in self.states().values():
            out[str(state)] = out.get(str(state), 0) + 1
        return out
