#!/usr/bin/env python3
"""A minimal MCP client for the agentiso bridge, run inside a workspace.

It speaks streamable HTTP with the standard library only: initialize, the
initialized notification, then one request. The endpoint and the token come
from the environment the daemon put in the guest agent's memory
(AGENTISO_BRIDGE_URL, AGENTISO_BRIDGE_TOKEN); TOKEN overrides the token.

    bridge_client.py list
    bridge_client.py call TOOL 'JSON-ARGUMENTS'

It prints one JSON line: {"http_error": N}, {"error": ...} or the result.
"""
import json
import os
import sys
import urllib.error
import urllib.request

URL = os.environ["AGENTISO_BRIDGE_URL"]
TOKEN = os.environ.get("TOKEN") or os.environ["AGENTISO_BRIDGE_TOKEN"]
session = None


class HTTPFailure(Exception):
    pass


def post(msg):
    global session
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "Authorization": "Bearer " + TOKEN,
    }
    if session:
        headers["Mcp-Session-Id"] = session
    req = urllib.request.Request(URL, data=json.dumps(msg).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            session = r.headers.get("Mcp-Session-Id") or session
            ctype = r.headers.get("Content-Type", "")
            body = r.read().decode()
    except urllib.error.HTTPError as e:
        raise HTTPFailure(e.code)
    if "id" not in msg:
        return None
    if ctype.startswith("text/event-stream"):
        for line in body.splitlines():
            if line.startswith("data:"):
                data = json.loads(line[5:])
                if data.get("id") == msg["id"]:
                    return data
        return None
    return json.loads(body)


def main():
    try:
        post({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "bridge_client.py", "version": "1"}}})
        post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        if sys.argv[1] == "list":
            r = post({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
            out = sorted(t["name"] for t in r["result"]["tools"])
        else:
            r = post({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                      "params": {"name": sys.argv[2], "arguments": json.loads(sys.argv[3])}})
            out = r.get("result") or {"error": r.get("error")}
    except HTTPFailure as e:
        out = {"http_error": e.args[0]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
