"""A python-hl7 asyncio MLLP server that only acknowledges (AA): the
interpreted-language peer of the MLLP benchmarks. Usage: ack_server.py PORT"""
import asyncio
import sys

import hl7
from hl7.mllp import start_hl7_server


async def handle(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            writer.writemessage(message.create_ack())
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()


async def main(port):
    async with await start_hl7_server(handle, host="127.0.0.1", port=port) as server:
        await server.serve_forever()


asyncio.run(main(int(sys.argv[1])))
