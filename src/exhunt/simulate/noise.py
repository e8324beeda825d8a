"""Background activity for `--noise N`: ordinary Windows and Exchange events no rule should alert on.

The bench and the `--noise` option share this model; it uses the run's own generator, so noise has
consistent processes, accounts and times, and the same seed gives the same noise.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from exhunt.simulate.scenario import Scenario, Step

if TYPE_CHECKING:
    from exhunt.simulate.events import Generator

_NOISE = Scenario(id="", title="background", kind="benign", path=__import__("pathlib").Path("<noise>"))
_MS_SIGNER = "Microsoft Corporation"


def add_noise(gen: Generator, count: int, start: datetime) -> None:
    """`count` background events spread from `start` to the run's last event."""
    from exhunt.simulate.events import SYSTEM32, fake_hash

    saved = gen.clock
    span = max((saved - start).total_seconds(), 3600.0)
    system = gen.account("SYSTEM")
    network = gen.account("NETWORK SERVICE")
    step = Step("noise", {}, "", 0, 0)
    edge, services, svchost = gen.named["edge"], gen.named["services"], gen.named["svchost"]
    for i in range(count):
        gen.clock = start + timedelta(seconds=gen.rand.uniform(0, span))
        pick = i % 5
        if pick == 0:
            proc = gen.new_proc(
                SYSTEM32 + r"\svchost.exe",
                SYSTEM32 + r"\svchost.exe -k netsvcs -p -s Schedule",
                system,
                services,
                gen.clock,
                "System",
            )
            gen.emit("process", _NOISE, step, proc)
        elif pick == 1:
            proc = gen.new_proc(SYSTEM32 + r"\taskhostw.exe", "taskhostw.exe", system, svchost, gen.clock, "System")
            gen.emit("process", _NOISE, step, proc)
        elif pick == 2:
            hour = gen.clock.strftime("%Y%m%d%H")
            gen.emit(
                "file",
                _NOISE,
                step,
                edge,
                action="created",
                path=gen.places["exchange"] + rf"\TransportRoles\Logs\MessageTracking\MSGTRK{hour}-{i}.LOG",
                sha1=f"{gen.rand.getrandbits(160):040x}",
                size=gen.rand.randrange(1000, 90000),
            )
        elif pick == 3:
            gen.emit(
                "image_load",
                _NOISE,
                step,
                edge,
                path=SYSTEM32 + r"\bcrypt.dll",
                sha1=fake_hash("bcrypt.dll"),
                size=110_432,
                signer=_MS_SIGNER,
                signed=True,
            )
        else:
            proc = gen.new_proc(
                SYSTEM32 + r"\conhost.exe",
                r"\??\C:\Windows\system32\conhost.exe 0xffffffff -ForceV1",
                network,
                edge,
                gen.clock,
                "System",
            )
            gen.emit("process", _NOISE, step, proc)
    gen.clock = saved
