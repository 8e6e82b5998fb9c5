"""A reference receiver for go-reports webhooks and notifications (examples/webhook-report.yaml).

It does what docs/dispatchers-http.md asks of a receiver: refuse stale timestamps, check the
HMAC-SHA256 signature in constant time, for multipart requests hash the received file and compare
it with the signed sha256, and drop repeated Idempotency-Keys (at-least-once delivery).

    python examples/webhook_receiver.py --secret-file credentials/hook/hmac-secret [--save-dir in/]
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web

TOLERANCE = 300  # seconds; older timestamps are refused as replays
RECEIVED = web.AppKey("received", list)
SEEN = web.AppKey("seen", set)


def signature_ok(secret: bytes, headers: Any, signed: bytes) -> bool:
    ts = headers.get("X-GoReports-Timestamp", "")
    sig = headers.get("X-GoReports-Signature", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > TOLERANCE:
        return False
    mac = hmac.new(secret, ts.encode() + b"." + signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest("sha256=" + mac, sig)


def make_app(secret: bytes, save_dir: Path | None = None) -> web.Application:
    """The receiver as an aiohttp app; app[RECEIVED] lists what it accepted."""
    app = web.Application(client_max_size=1024 ** 3)
    app[RECEIVED] = []
    app[SEEN] = set()

    async def receive(request: web.Request) -> web.Response:
        key = request.headers.get("Idempotency-Key", "")
        if request.content_type.startswith("multipart/"):
            metadata, sha, size, name = b"", hashlib.sha256(), 0, ""
            reader = await request.multipart()
            async for part in reader:
                if part.name == "metadata":
                    metadata = await part.read()  # type: ignore[union-attr]
                elif part.name == "file":  # streamed: hashed (and saved) chunk by chunk
                    name = Path(part.filename or "file").name  # type: ignore[union-attr]
                    out = open(save_dir / name, "wb") if save_dir else None
                    try:
                        while chunk := await part.read_chunk(1 << 16):  # type: ignore[union-attr]
                            sha.update(chunk)
                            size += len(chunk)
                            if out:
                                out.write(chunk)
                    finally:
                        if out:
                            out.close()
            digest = sha.hexdigest()
            ok = (signature_ok(secret, request.headers, metadata + b"." + digest.encode())
                  and json.loads(metadata or b"{}").get("artifact", {}).get("sha256") == digest)
            doc = json.loads(metadata) if ok else None
            extra = {"file": name, "bytes": size}
        else:
            body = await request.read()
            ok = signature_ok(secret, request.headers, body)
            doc = json.loads(body) if ok else None
            extra = {}
        if not ok:
            return web.json_response({"error": "bad signature or stale timestamp"}, status=401)
        if key in app[SEEN]:
            return web.json_response({"duplicate": True})  # delivered before: acknowledge only
        app[SEEN].add(key)
        app[RECEIVED].append({"path": request.path, "key": key, "payload": doc, **extra})
        print(f"{request.path}: {doc.get('type')} {json.dumps(extra or doc.get('text', ''))}",
              flush=True)
        return web.json_response({"ok": True})

    app.router.add_post("/{tail:.*}", receive)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--secret-file", type=Path, required=True, help="the shared hmac-secret")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--save-dir", type=Path, help="keep received files here")
    args = p.parse_args()
    if args.save_dir:
        args.save_dir.mkdir(parents=True, exist_ok=True)
    secret = args.secret_file.read_bytes().strip(b"\n")
    web.run_app(make_app(secret, args.save_dir), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
