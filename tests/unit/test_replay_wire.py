"""The master-worker wire (replayer/engine/wire.py), pinned to its bytes: a step, a result and the
settings as Locust packs them, and back into the same named records."""

from __future__ import annotations

from replayer.engine import wire
from replayer.engine.plan import Step
from replayer.engine.ramp import Ramp
from replayer.judge.result import Result
from tests.support.replay import locust_unpatched

with locust_unpatched():
    from locust.rpc.protocol import Message  # how Locust packs every message

STEP = Step(idx=7, conn="node-a/12/5/99", due=1.5, method="POST", target="/orders?x=1",
            headers=[("Host", "h"), ("X-A", "1")], body=b"\x00\xff", endpoint="POST /orders",
            rec_status=201, rec_body=b'{"id":1}', rec_body_ok=True, version="1.0")
# msgpack: [type, {"steps": [[idx, conn, due, method, target, headers, body, endpoint,
#           rec_status, rec_body, rec_body_ok, version]]}, node]
STEP_BYTES = bytes.fromhex("""
93ac726577696e645f737465707381a57374657073919c07ae6e6f64652d612f31322f352f3939cb3ff80000
00000000a4504f5354ab2f6f72646572733f783d319292a4486f7374a16892a3582d41a131c40200ffac504f
5354202f6f7264657273ccc9c4087b226964223a317dc3a3312e30a177""")

RESULT = Result(idx=7, worker=1, due=1.5, sent=1.5005, lag_ms=0.5, wait_ms=0.0, latency_ms=2.25,
                status=500, error=None, endpoint="POST /orders", status_ok=False, body_ok=None,
                diffs=["$.id"], iteration=2, body=None)
# [type, [[idx, worker, due, sent, lag_ms, wait_ms, latency_ms, status, error, endpoint,
#          status_ok, body_ok, diffs, iteration, body]], node]
RESULT_BYTES = bytes.fromhex("""
93ae726577696e645f726573756c7473919f0701cb3ff8000000000000cb3ff8020c49ba5e35cb3fe0000000
000000cb0000000000000000cb4002000000000000cd01f4c0ac504f5354202f6f7264657273c2c091a4242e
696402c0a177""")

SETTINGS = wire.Settings(target="http://t:8080", ignore=["$..id"], timeout=5.0, loop=True,
                         duration=60.0, span=10.0, ramp=Ramp(100, 50, 200, 30.0), planned=500,
                         follow=False, idle_s=60.0, noise={"GET /a": ["$.now"]}, keep_bodies=False)
# [type, {"worker": 1, "settings": {field: value, ...}}, node]: settings travel by name
SETTINGS_BYTES = bytes.fromhex("""
93ad726577696e645f636f6e66696782a6776f726b657201a873657474696e67738ca6746172676574ad6874
74703a2f2f743a38303830a669676e6f726591a5242e2e6964a774696d656f7574cb4014000000000000a46c
6f6f70c3a86475726174696f6ecb404e000000000000a47370616ecb4024000000000000a472616d7084a573
7461727464a47374657032a36d6178ccc8a6737465705f73cb403e000000000000a7706c616e6e6564cd01f4
a6666f6c6c6f77c2a669646c655f73cb404e000000000000a56e6f69736581a6474554202f6191a5242e6e6f
77ab6b6565705f626f64696573c2a16d""")


def test_step_bytes_and_back():
    """A step goes out as these bytes and comes back as an equal Step (binary body included)."""
    msg = Message(wire.MSG_STEPS, {"steps": [wire.step_to_wire(STEP)]}, "w")
    assert msg.serialize() == STEP_BYTES
    got = Message.unserialize(STEP_BYTES).data["steps"]
    assert [wire.step_from_wire(v) for v in got] == [STEP]


def test_result_bytes_and_back():
    """A worker's result goes out as these bytes; the master reads back the same Result."""
    assert Message(wire.MSG_RESULTS, [RESULT], "w").serialize() == RESULT_BYTES
    assert wire.results_from_wire(Message.unserialize(RESULT_BYTES).data) == [RESULT]


def test_settings_bytes_and_back():
    """The config message's settings go out as these bytes and come back equal (the ramp too)."""
    msg = Message(wire.MSG_CONFIG, {"worker": 1, "settings": wire.settings_to_wire(SETTINGS)}, "m")
    assert msg.serialize() == SETTINGS_BYTES
    assert wire.settings_from_wire(Message.unserialize(SETTINGS_BYTES).data["settings"]) == SETTINGS


def test_message_names():
    """The names of the conversation's messages (a worker of another version must know them)."""
    assert (wire.MSG_CONFIG, wire.MSG_CONFIGURED, wire.MSG_STEPS, wire.MSG_LOAD_END,
            wire.MSG_LOADED, wire.MSG_START, wire.MSG_STARTED, wire.MSG_RESULTS, wire.MSG_DONE,
            wire.MSG_STOP, wire.MSG_END) == (
        "rewind_config", "rewind_configured", "rewind_steps", "rewind_loaded?", "rewind_loaded",
        "rewind_start", "rewind_started", "rewind_results", "rewind_done", "rewind_stop",
        "rewind_end")
