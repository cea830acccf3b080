"""A TCP proxy on 127.0.0.1 that delays every byte by a fixed time each way.

``python -m benchmarks.figures._latency PORT TARGET_HOST:PORT DELAY_MS`` puts a
registry ``2 x DELAY_MS`` of round trip away without a netem qdisc (kernels built
without ``sch_netem``, as on these VMs). Each chunk is stamped when it arrives and
written once its delay has passed, so the link keeps its throughput: only latency is
added, as between a client and a registry in the same region. Prints ``ready`` once
it listens.
"""

from __future__ import annotations

import math
import sys

import trio

_CHUNK = 1 << 18


async def _pump(src: trio.SocketStream, dst: trio.SocketStream, delay: float) -> None:
    send, recv = trio.open_memory_channel[tuple[float, bytes]](math.inf)

    async def stamp() -> None:
        async with send:
            while data := await src.receive_some(_CHUNK):
                send.send_nowait((trio.current_time() + delay, data))

    async def deliver() -> None:
        async with recv:
            async for due, data in recv:
                await trio.sleep_until(due)
                await dst.send_all(data)
        await dst.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stamp)
        nursery.start_soon(deliver)


async def _serve(port: int, target: str, delay: float) -> None:
    host, _, target_port = target.rpartition(":")

    async def handle(client: trio.SocketStream) -> None:
        try:
            upstream = await trio.open_tcp_stream(host, int(target_port))
            async with client, upstream, trio.open_nursery() as nursery:
                nursery.start_soon(_pump, client, upstream, delay)
                nursery.start_soon(_pump, upstream, client, delay)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # one side went away: so does this connection

    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    print("ready", flush=True)
    await trio.serve_listeners(handle, listeners)


def main() -> None:
    port, target, delay_ms = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    trio.run(_serve, port, target, delay_ms / 1000)


if __name__ == "__main__":
    main()
