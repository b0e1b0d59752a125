"""An HTTPS/1.1 keep-alive echo server on asyncio streams, for capture tests.

asyncio does TLS through memory BIOs: it reads the socket itself and hands the bytes to libssl
(no SSL_set_fd, no syscall inside SSL_read), as Node.js and uvicorn do. Requests with a
Content-Length (or no body) are answered 200 with the same JSON as echo_http_server.py.

    python echo_asyncio_server.py --port 8443 --tls-cert C --tls-key K [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import ssl
from urllib.parse import urlsplit


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = [line.split(":", 1) for line in lines[1:] if line]
            headers = [[k, v.strip()] for k, v in headers]
            length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
            body = await reader.readexactly(length)
            url = urlsplit(target)
            answer = json.dumps({
                "method": method, "path": url.path, "query": url.query, "body_len": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(), "headers": headers,
            }).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(answer) + answer)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, ValueError):
        pass
    finally:
        writer.close()


async def serve(args) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.tls_cert, args.tls_key)
    server = await asyncio.start_server(handle, args.host, args.port, ssl=ctx, backlog=1024)
    print(f"listening on {args.host}:{args.port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-cert", required=True)
    parser.add_argument("--tls-key", required=True)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
