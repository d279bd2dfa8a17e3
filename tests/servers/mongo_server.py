#!/usr/bin/env python3
"""A MongoDB wire-protocol server on loopback for the mongo sensor's tests.

Built on MockupDB (MongoDB's wire-protocol test server for driver authors).
It binds 127.0.0.1 on a port chosen by the OS, prints that port on the first
line of stdout, and answers as the server named by MODE until killed (or,
when stdin is a pipe, until it closes, so it never outlives the test that
started it):

  primary      MongoDB 7 replica-set primary (maxWireVersion 21)
  secondary    MongoDB 7 replica-set secondary (--primary names the primary)
  arbiter      MongoDB 7 replica-set arbiter
  standalone   MongoDB 7 server that is not in a replica set
  mongos       MongoDB 7 router of a sharded cluster
  old          MongoDB 4.0.0: no `hello` (errors "no such command: 'hello'",
               code 59, as 4.0 before 4.0.21 does); answers `isMaster`
  ancient      MongoDB 3.4 (maxWireVersion 5): no OP_MSG at all; it hangs up
               on an OP_MSG and speaks OP_QUERY/OP_REPLY only
  auth         a primary that requires SCRAM-SHA-256 (--user/--password);
               implements the server side of RFC 5802/7677 and refuses
               `ping` on a connection that has not authenticated (code 13)
  auth-refuse  a primary whose authentication always fails
               (errmsg "Authentication failed.", code 18)

The `hello` replies follow the field names and types of the MongoDB manual,
"hello (database command)", Output section:
https://www.mongodb.com/docs/manual/reference/command/hello/ (fields common
to all instances: isWritablePrimary, topologyVersion, maxBsonObjectSize,
maxMessageSizeBytes, maxWriteBatchSize, localTime,
logicalSessionTimeoutMinutes, connectionId, minWireVersion, maxWireVersion,
readOnly; replica-set fields: hosts, setName, setVersion, secondary,
arbiterOnly, primary, me, electionId, lastWrite; mongos: msg "isdbgrid";
saslSupportedMechs when asked for with `saslSupportedMechs: "<db.user>"`).
Legacy `isMaster` replies carry `ismaster` instead of `isWritablePrimary`.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import itertools
import os
import stat
import sys
import threading

from bson import Binary, ObjectId
from mockupdb import MockupDB, OpMsg

MONGODB_7_WIRE = 21
MONGODB_4_0_WIRE = 7
MONGODB_3_4_WIRE = 5
SCRAM_ITERATIONS = 15000  # MongoDB's default scramSHA256IterationCount


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["primary", "secondary", "arbiter", "standalone", "mongos",
                                    "old", "ancient", "auth", "auth-refuse"])
    p.add_argument("--set", default="rs0", help="replica-set name")
    p.add_argument("--hosts", default="", help="extra members for `hosts`, comma-separated")
    p.add_argument("--primary", default=None, help="`primary` field (default: this server if primary)")
    p.add_argument("--user", default="monitor")
    p.add_argument("--password", default="pencil")
    return p.parse_args()


def main():
    args = parse_args()
    server = MockupDB(port=0, auto_ismaster=False)
    port = server.run()
    me = "127.0.0.1:%d" % port
    mode = args.mode
    in_set = mode in ("primary", "secondary", "arbiter", "auth", "auth-refuse", "old", "ancient")
    writable = mode in ("primary", "standalone", "mongos", "auth", "auth-refuse", "old", "ancient")
    wire = {"old": MONGODB_4_0_WIRE, "ancient": MONGODB_3_4_WIRE}.get(mode, MONGODB_7_WIRE)
    connection_ids = itertools.count(1)
    extra_hosts = [h for h in args.hosts.split(",") if h]

    def hello_reply(request, legacy):
        doc = {}
        if legacy:
            doc["ismaster"] = writable
        else:
            doc["isWritablePrimary"] = writable
        doc.update({
            "topologyVersion": {"processId": ObjectId(), "counter": 0},
            "maxBsonObjectSize": 16777216,
            "maxMessageSizeBytes": 48000000,
            "maxWriteBatchSize": 100000,
            "localTime": datetime.datetime.now(datetime.timezone.utc),
            "logicalSessionTimeoutMinutes": 30,
            "connectionId": next(connection_ids),
            "minWireVersion": 0,
            "maxWireVersion": wire,
            "readOnly": False,
        })
        if legacy and request.doc.get("helloOk"):
            doc["helloOk"] = True
        if mode == "mongos":
            doc["msg"] = "isdbgrid"
        if in_set:
            doc.update({
                "hosts": [me] + extra_hosts if mode != "arbiter" else extra_hosts,
                "setName": args.set,
                "setVersion": 1,
                "secondary": mode == "secondary",
                "me": me,
            })
            if mode == "arbiter":
                doc["arbiterOnly"] = True
                doc["arbiters"] = [me]
            primary = args.primary or (me if writable else None)
            if primary:
                doc["primary"] = primary
            if writable:
                doc["electionId"] = ObjectId("7fffffff0000000000000001")
            now = datetime.datetime.now(datetime.timezone.utc)
            doc["lastWrite"] = {"lastWriteDate": now, "majorityWriteDate": now}
        asked = request.doc.get("saslSupportedMechs")
        if asked and mode == "auth" and asked == "admin." + args.user:
            doc["saslSupportedMechs"] = ["SCRAM-SHA-256"]
        return doc

    authenticated = set()  # client ports that completed SCRAM
    conversations = {}
    conversation_ids = itertools.count(1)

    def handle(request):
        name = (request.command_name or "").lower()
        is_msg = isinstance(request, OpMsg)
        if mode == "ancient" and is_msg:
            return request.hangup()  # 3.4 does not know opcode 2013
        if name == "hello":
            if mode in ("old", "ancient"):
                return request.command_err(59, "no such command: 'hello'")
            return request.reply(hello_reply(request, legacy=not is_msg))
        if name == "ismaster":
            return request.reply(hello_reply(request, legacy=True))
        if name == "ping":
            if mode == "auth" and request.client_port not in authenticated:
                return request.command_err(13, "command ping requires authentication")
            return request.reply({})
        if name == "saslstart":
            if mode == "auth-refuse":
                return request.command_err(18, "Authentication failed.")
            if mode != "auth":
                return request.command_err(
                    334, "Unable to use SCRAM-SHA-1 based authentication for user without any SCRAM credentials registered")
            return sasl_start(request)
        if name == "saslcontinue":
            return sasl_continue(request)
        return request.command_err(59, "no such command: '%s'" % request.command_name)

    # --- SCRAM-SHA-256, server side (RFC 5802 section 3, RFC 7677) ---------

    def h(data):
        return hashlib.sha256(data).digest()

    def mac(key, data):
        return hmac.new(key, data, hashlib.sha256).digest()

    def sasl_start(request):
        if request.doc.get("mechanism") != "SCRAM-SHA-256":
            return request.command_err(2, "Received authentication for mechanism %s which is not enabled"
                                       % request.doc.get("mechanism"))
        client_first = bytes(request.doc["payload"]).decode()
        if not client_first.startswith("n,,"):
            return request.command_err(17, "Invalid GS2 header")
        bare = client_first[3:]
        attrs = dict(a.split("=", 1) for a in bare.split(","))
        salt = os.urandom(16)
        nonce = attrs["r"] + base64.b64encode(os.urandom(18)).decode()
        server_first = "r=%s,s=%s,i=%d" % (nonce, base64.b64encode(salt).decode(), SCRAM_ITERATIONS)
        cid = next(conversation_ids)
        conversations[cid] = {"user": attrs.get("n"), "bare": bare, "server_first": server_first,
                              "nonce": nonce, "salt": salt}
        return request.reply({"conversationId": cid, "done": False,
                              "payload": Binary(server_first.encode())})

    def sasl_continue(request):
        conv = conversations.pop(request.doc.get("conversationId"), None)
        if conv is None:
            return request.command_err(17, "No SASL session state found")
        final = bytes(request.doc["payload"]).decode()
        without_proof, _, proof = final.rpartition(",p=")
        attrs = dict(a.split("=", 1) for a in without_proof.split(","))
        refused = lambda: request.command_err(18, "Authentication failed.")
        if attrs.get("r") != conv["nonce"] or attrs.get("c") != "biws" or conv["user"] != args.user:
            return refused()
        salted = hashlib.pbkdf2_hmac("sha256", args.password.encode(), conv["salt"], SCRAM_ITERATIONS)
        client_key = mac(salted, b"Client Key")
        stored_key = h(client_key)
        auth_message = ",".join([conv["bare"], conv["server_first"], without_proof]).encode()
        signature = mac(stored_key, auth_message)
        try:
            given = base64.b64decode(proof, validate=True)
        except ValueError:
            return refused()
        if len(given) != len(signature):
            return refused()
        recovered = bytes(a ^ b for a, b in zip(given, signature))
        if h(recovered) != stored_key:
            return refused()
        authenticated.add(request.client_port)
        server_signature = mac(mac(salted, b"Server Key"), auth_message)
        return request.reply({"conversationId": request.doc["conversationId"], "done": True,
                              "payload": Binary(b"v=" + base64.b64encode(server_signature))})

    server.autoresponds(handle)
    print(port, flush=True)

    # Exit when the test closes our stdin (or kills us).
    def watch_stdin():
        sys.stdin.read()
        os._exit(0)

    # Only when stdin is a pipe (a test harness); with /dev/null or a
    # terminal, run until killed.
    if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        threading.Thread(target=watch_stdin, daemon=True).start()
    threading.Event().wait()


if __name__ == "__main__":
    main()
