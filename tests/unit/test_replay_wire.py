"""The master-worker wire (replayer/engine/wire.py), pinned to its bytes: a step, a result and the
settings as Locust packs them, and back into the same named records."""

from __future__ import annotations

from replayer.engine import wire
from replayer.engine.plan import Step
from replayer.engine.ramp import Ramp
from replayer.judge import sketch
from replayer.judge.result import Result
from replayer.judge.summary import Summary
from tests.support.replay import locust_unpatched

with locust_unpatched():
    from locust.rpc.protocol import Message  # how Locust packs every message

STEP = Step(idx=7, conn="node-a/12/5/99", due=1.5, method="POST", target="/orders?x=1",
            headers=[("Host", "h"), ("X-A", "1")], body=b"\x00\xff", endpoint="POST /orders",
            rec_status=201, rec_body=b'{"id":1}', rec_body_ok=True, version="1.0", iteration=2,
            corr=[["node-a/12/5/99", 3], [], [], [1], None, True])
# msgpack: [type, {"steps": [[idx, conn, due, method, target, headers, body, endpoint,
#           rec_status, rec_body, rec_body_ok, version, iteration, corr]]}, node]; corr is
# replayer/engine/correlation/stepwire.py's [ref, produced, bindings, relay_to, after, awaited]
STEP_BYTES = bytes.fromhex("""
93ac726577696e645f737465707381a57374657073919e07ae6e6f64652d612f31322f352f3939cb3ff80000
00000000a4504f5354ab2f6f72646572733f783d319292a4486f7374a16892a3582d41a131c40200ffac504f
5354202f6f7264657273ccc9c4087b226964223a317dc3a3312e30029692ae6e6f64652d612f31322f352f39
390390909101c0c3a177""")

RESULT = Result(idx=7, worker=1, due=1.5, sent=1.5005, lag_ms=0.5, wait_ms=0.0, latency_ms=2.25,
                status=500, error=None, endpoint="POST /orders", status_ok=False, body_ok=None,
                diffs=["$.id"], iteration=2, body=None)
# [type, {"worker": 1, "cells": [[endpoint, second, Summary]]}, node]; a Summary is
# [counts, sketches (latency, lag, scheduler lag, client), [first sent, last sent, last end],
#  statuses, error kinds, diff paths, latency bucket counts, latency sum, examples]
SUMMARY_BYTES = bytes.fromhex("""
93ae726577696e645f73756d6d61727982a6776f726b657201a563656c6c739193ac504f5354202f6f726465
72730199990101000101010000009497cb3ff0000000000000cb4002000000000000cb4002000000000000cb
4002000000000000cb0000000000000000922991cb3ff000000000000092009097cb3ff0000000000000cb3f
e0000000000000cb3fe0000000000000cb3fe0000000000000cb000000000000000092d0de91cb3ff0000000
00000092009097cb3ff0000000000000cb3fe0000000000000cb3fe0000000000000cb3fe0000000000000cb
000000000000000092d0de91cb3ff000000000000092009097cb0000000000000000cb0000000000000000cb
7ff0000000000000cbfff0000000000000cb000000000000000092009092009093cb3ff8020c49ba5e35cb3f
f8020c49ba5e35cb3ff80b439581062581a33530300181a84854545020353030018093000100cb3f626e978d
4fdf3b9185a369647807a9697465726174696f6e02a6737461747573cd01f4a97374617475735f6f6bc2a564
6966667391a4242e6964a177""")

SETTINGS = wire.Settings(target="http://t:8080", ignore=["$..id"], timeout=5.0,
                         duration=60.0, ramp=Ramp(100, 50, 200, 30.0), timed=True,
                         idle_s=60.0, noise={"GET /a": ["$.now"]}, baseline_pass=2, spill_dir="/w",
                         correlate={"wait_s": 60.0, "shift_time": True, "first_ns": 1,
                                    "jwt_key_file": None, "jwt_key_env": "K", "relay_all": True})
# [type, {"worker": 1, "settings": {field: value, ...}}, node]: settings travel by name
SETTINGS_BYTES = bytes.fromhex("""
93ad726577696e645f636f6e66696782a6776f726b657201a873657474696e67738ba6746172676574ad6874
74703a2f2f743a38303830a669676e6f726591a5242e2e6964a774696d656f7574cb4014000000000000a864
75726174696f6ecb404e000000000000a472616d7084a5737461727464a47374657032a36d6178ccc8a67374
65705f73cb403e000000000000a574696d6564c3a669646c655f73cb404e000000000000a56e6f69736581a6
474554202f6191a5242e6e6f77ad626173656c696e655f7061737302a97370696c6c5f646972a22f77a9636f
7272656c61746586a6776169745f73cb404e000000000000aa73686966745f74696d65c3a866697273745f6e
7301ac6a77745f6b65795f66696c65c0ab6a77745f6b65795f656e76a14ba972656c61795f616c6cc3a16d""")


def test_step_bytes_and_back():
    """A step goes out as these bytes and comes back as an equal Step (binary body included)."""
    msg = Message(wire.MSG_STEPS, {"steps": [wire.step_to_wire(STEP)]}, "w")
    assert msg.serialize() == STEP_BYTES
    got = Message.unserialize(STEP_BYTES).data["steps"]
    assert [wire.step_from_wire(v) for v in got] == [STEP]


def test_summary_bytes_and_back():
    """A worker's summary of one result goes out as these bytes; the master reads back a Summary
    with the same counts, statuses, mismatch example, bucket counts and percentiles."""
    s = Summary(3)
    s.add(RESULT, (0.001, 0.01), True)
    msg = Message(wire.MSG_SUMMARY, {"worker": 1, "cells": [["POST /orders", 1, s.to_wire()]]},
                  "w")
    assert msg.serialize() == SUMMARY_BYTES
    back = Summary.from_wire(Message.unserialize(SUMMARY_BYTES).data["cells"][0][2])
    assert back.to_wire() == s.to_wire()
    assert (back.count, back.errors, back.status, back.status_mismatches, back.buckets) == (
        1, 1, {"500": 1}, 1, [0, 1, 0])
    assert back.examples == [{"idx": 7, "iteration": 2, "status": 500, "status_ok": False,
                              "diffs": ["$.id"]}]
    assert sketch.quantile(back.latency, 50) == 2.25


def test_settings_bytes_and_back():
    """The config message's settings go out as these bytes and come back equal (the ramp too)."""
    msg = Message(wire.MSG_CONFIG, {"worker": 1, "settings": wire.settings_to_wire(SETTINGS)}, "m")
    assert msg.serialize() == SETTINGS_BYTES
    assert wire.settings_from_wire(Message.unserialize(SETTINGS_BYTES).data["settings"]) == SETTINGS


def test_message_names():
    """The names of the conversation's messages (a worker of another version must know them)."""
    assert (wire.MSG_CONFIG, wire.MSG_CONFIGURED, wire.MSG_STEPS, wire.MSG_START,
            wire.MSG_STARTED, wire.MSG_SUMMARY, wire.MSG_DONE, wire.MSG_STOP, wire.MSG_END) == (
        "rewind_config", "rewind_configured", "rewind_steps", "rewind_start", "rewind_started",
        "rewind_summary", "rewind_done", "rewind_stop", "rewind_end")
