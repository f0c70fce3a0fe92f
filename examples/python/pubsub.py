"""Subscribe, publish and receive with ferry from Python, using the
`websockets` library (and `msgpack` for the msgpack codec).

    python3 examples/python/pubsub.py [--codec json|msgpack] [ws://localhost:7420/ws]

Debian/Ubuntu: apt-get install python3-websockets python3-msgpack;
elsewhere: pip install websockets msgpack.
"""
import asyncio
import json
import sys

import websockets


def codec(name):
    if name == "msgpack":
        import msgpack
        return msgpack.packb, lambda b: msgpack.unpackb(b, raw=False)
    return json.dumps, json.loads


async def main(url, name):
    encode, decode = codec(name)
    async with websockets.connect(url, subprotocols=["ferry.v1." + name]) as ws:
        print("negotiated", ws.subprotocol)

        async def recv():
            return decode(await asyncio.wait_for(ws.recv(), 5))

        await ws.send(encode({"op": "sub", "topic": "telemetry/+/temp", "id": 1}))
        print("<", await recv())  # {'op': 'ack', 'id': 1}
        await ws.send(encode({"op": "pub", "topic": "telemetry/dev-1/temp",
                              "data": {"celsius": 21.5}, "id": 2}))
        for _ in range(2):  # the message and the publish's ack
            print("<", await recv())
        await ws.send(encode({"op": "pub", "topic": "bad/+", "data": 1, "id": 3}))
        print("<", await recv())  # err bad_topic


if __name__ == "__main__":
    args = sys.argv[1:]
    name = "json"
    if len(args) >= 2 and args[0] == "--codec":
        name, args = args[1], args[2:]
    asyncio.run(main(args[0] if args else "ws://localhost:7420/ws", name))
