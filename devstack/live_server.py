"""Locally, what API Gateway's WebSocket API does for stocksync (chalice local serves no
WebSockets, aws/chalice#1674).

- A WebSocket endpoint (the pinned `websockets` package): each handshake, message and
  close becomes an API Gateway-shaped event handed to the very Lambda handlers the app
  deploys (`app.websocket_connect`, `app.websocket_message`, `app.websocket_disconnect`);
  a $connect answer other than 200 refuses the handshake with that status, as API
  Gateway does.
- The part of the management API the pusher uses, on a port of its own (the `websockets`
  server speaks only GET): `POST /@connections/{id}` sends the body to the connection,
  or answers 410 GoneException; `DELETE` closes it; `GET` describes it.

So the pushing code (chalicelib.live.Pusher, boto3's `apigatewaymanagementapi`) runs
unchanged locally and deployed; only LIVE_MANAGEMENT_URL differs.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from devstack.services import free_port

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], Any]
_CONNECTION_PATH = re.compile(r"^(?:/[^@]*)?/@connections/([^/?]+)$")


def new_connection_id() -> str:
    """Shaped like API Gateway's (12 characters of base64, `=` at the end)."""
    return base64.urlsafe_b64encode(os.urandom(8)).decode("ascii")


class LocalWebsocketApi:
    def __init__(self, connect: Handler, message: Handler, disconnect: Handler,
                 host: str = "127.0.0.1", port: int | None = None,
                 management_port: int | None = None, stage: str = "local"):
        self._handlers = {"$connect": connect, "$default": message, "$disconnect": disconnect}
        self.host = host
        self.port = port or free_port(host)
        self.management_port = management_port or free_port(host)
        self.stage = stage
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._management: ThreadingHTTPServer | None = None
        self._connections: dict[str, ServerConnection] = {}
        self._lock = threading.Lock()
        self.pushes = 0  # management API posts delivered
        self.gone = 0  # posts answered 410

    @property
    def websocket_url(self) -> str:
        return f"ws://{self.host}:{self.port}/"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}"

    def start(self) -> "LocalWebsocketApi":
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def open_server() -> Server:
            return await serve(self._session, self.host, self.port,
                               process_request=self._handshake, max_size=64 * 1024)

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._server = self._loop.run_until_complete(open_server())
            except BaseException as exc:  # noqa: BLE001 - reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="live-websocket", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        self._management = ThreadingHTTPServer((self.host, self.management_port), _management_handler(self))
        self._management.daemon_threads = True
        threading.Thread(target=self._management.serve_forever, name="live-management",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._management is not None:
            self._management.shutdown()
            self._management.server_close()
            self._management = None
        if self._loop is not None and self._server is not None:
            self._server.close()
            try:
                asyncio.run_coroutine_threadsafe(self._server.wait_closed(), self._loop).result(15)
            except Exception:  # noqa: BLE001 - stopping anyway
                log.warning("local WebSocket server did not close in time")
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=15)
        self._loop = self._server = self._thread = None

    # --- what tests look at -------------------------------------------------------------

    def connection_ids(self) -> list[str]:
        with self._lock:
            return list(self._connections)

    def drop_all(self) -> int:
        """Close every connection from the server's side (API Gateway's idle or 2-hour limit,
        a deploy): the page must fall back to polling."""
        with self._lock:
            connections = list(self._connections.values())
        for connection in connections:
            asyncio.run_coroutine_threadsafe(connection.close(1001, "going away"), self._loop).result(10)
        return len(connections)

    # --- the WebSocket side ---------------------------------------------------------------

    def _event(self, route: str, connection_id: str, request: Request | None = None,
               body: str | None = None) -> dict[str, Any]:
        kind = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
        event: dict[str, Any] = {
            "requestContext": {
                "routeKey": route, "eventType": kind, "connectionId": connection_id,
                "domainName": f"{self.host}:{self.port}", "stage": self.stage, "apiId": "local",
                "requestId": uuid.uuid4().hex, "connectedAt": int(time.time() * 1000),
                "identity": {"sourceIp": self.host}},
            "isBase64Encoded": False,
        }
        if request is not None:
            event["headers"] = {k: v for k, v in request.headers.raw_items()}
            params = dict(parse_qsl(urlsplit(request.path).query, keep_blank_values=True))
            event["queryStringParameters"] = params or None
        if body is not None:
            event["body"] = body
        return event

    async def _call(self, route: str, event: dict[str, Any]) -> dict[str, Any]:
        # The handlers are the Lambda functions themselves: blocking, so off the event loop.
        try:
            answer = await asyncio.get_running_loop().run_in_executor(
                None, self._handlers[route], event, None)
        except Exception:  # noqa: BLE001 - what Lambda would log; API Gateway answers 500
            log.exception("%s handler raised", route)
            return {"statusCode": 500}
        return answer if isinstance(answer, dict) else {"statusCode": 200}

    async def _handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        connection_id = new_connection_id()
        connection.stocksync_id = connection_id  # type: ignore[attr-defined]
        answer = await self._call("$connect", self._event("$connect", connection_id, request))
        status = int(answer.get("statusCode", 200))
        if status != 200:
            return connection.respond(status, f"connection refused ({status})\n")
        return None

    async def _session(self, connection: ServerConnection) -> None:
        connection_id = connection.stocksync_id  # type: ignore[attr-defined]
        with self._lock:
            self._connections[connection_id] = connection
        try:
            async for message in connection:
                text = message if isinstance(message, str) else message.decode("utf-8", "replace")
                await self._call("$default", self._event("$default", connection_id, body=text))
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                self._connections.pop(connection_id, None)
            await self._call("$disconnect", self._event("$disconnect", connection_id))

    # --- the management API --------------------------------------------------------------

    def _connection(self, connection_id: str) -> ServerConnection | None:
        with self._lock:
            return self._connections.get(connection_id)

    def post(self, connection_id: str, data: bytes) -> bool:
        connection = self._connection(connection_id)
        if connection is None or self._loop is None:
            self.gone += 1
            return False
        try:
            asyncio.run_coroutine_threadsafe(
                connection.send(data.decode("utf-8", "replace")), self._loop).result(10)
        except ConnectionClosed:
            self.gone += 1
            return False
        self.pushes += 1
        return True

    def close(self, connection_id: str) -> bool:
        connection = self._connection(connection_id)
        if connection is None or self._loop is None:
            return False
        asyncio.run_coroutine_threadsafe(connection.close(1000, "closed by the server"), self._loop).result(10)
        return True


def _management_handler(api: LocalWebsocketApi) -> type[BaseHTTPRequestHandler]:
    class ManagementHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _connection_id(self) -> str | None:
            match = _CONNECTION_PATH.match(urlsplit(self.path).path)
            return unquote(match.group(1)) if match else None

        def _answer(self, status: int, body: dict[str, Any] | None = None, error: str | None = None) -> None:
            payload = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if error:
                self.send_header("x-amzn-ErrorType", error)
            self.end_headers()
            self.wfile.write(payload)

        def _gone(self) -> None:
            self._answer(410, {"message": None}, error="GoneException")

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length)
            connection_id = self._connection_id()
            if connection_id is None:
                self._answer(404, {"message": "Not Found"}, error="NotFoundException")
            elif len(data) > 128 * 1024:  # API Gateway's frame limit
                self._answer(413, {"message": "Payload too large"}, error="PayloadTooLargeException")
            elif api.post(connection_id, data):
                self._answer(200)
            else:
                self._gone()

        def do_DELETE(self) -> None:  # noqa: N802
            connection_id = self._connection_id()
            if connection_id is not None and api.close(connection_id):
                self._answer(204)
            else:
                self._gone()

        def do_GET(self) -> None:  # noqa: N802
            connection_id = self._connection_id()
            if connection_id is not None and api._connection(connection_id) is not None:
                self._answer(200, {"ConnectedAt": None, "Identity": {"SourceIp": api.host}})
            else:
                self._gone()

        def log_message(self, *args: Any) -> None:
            pass

    return ManagementHandler
