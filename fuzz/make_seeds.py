#!/usr/bin/env python3
"""Writes the committed seed corpus of each fuzz target (fuzz/corpus/<target>/), from the
frame layouts of PROTOCOL.md. Run from anywhere; it replaces the seed files it writes."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def frame(kind, code, invoke, body):
    rest = bytes([ord(kind), ord(code)]) + struct.pack(">H", invoke) + body
    return struct.pack(">H", len(rest)) + rest


def str8(text):
    b = text.encode()
    return bytes([len(b)]) + b


def link(code, body=b""):
    return frame("L", code, 0xFFFF, body)


IDENTIFY_P3 = link("I", bytes([3, 1]) + str8("Call") + bytes([2, 1]) + str8("2201") + bytes([0]) + str8("2202"))
IDENTIFY_P2 = link("I", bytes([2, 0x41]) + str8("ACD") + bytes([0]))
LINK = [
    link("O", bytes([1]) + str8("relay")),
    link("o", bytes([0]) + str8("OfficeServ 7200") + str8("4.60") + bytes([2, 0, 0x5A, 1, 2, 3]) + bytes([7])),
    link("Q"),
    link("q", bytes([2, 0, 0x5A, 1, 2, 3])),
    link("C", str8("1234")),
    link("c", bytes([0, 1, 2]) + str8("2201") + bytes([0]) + str8("701") + bytes([1])),
    link("H"),
    link("h"),
    IDENTIFY_P3,
    IDENTIFY_P2,
    link("i", bytes([0, 2, 1, 1, 2, 0])),
    link("D", bytes([1, 0]) + str8("2203")),
    link("d", bytes([0])),
    link("W", bytes([2, 0])),
    link("X", bytes([6]) + str8("nothing received for 30 s")),
    link("P", str8("s3cret")),
    link("p", bytes([0])),
]
CALL = [
    frame("R", "K", 7, bytes([1]) + str8("2201") + str8("2202")),
    frame("R", "K", 7, str8("2201") + str8("2202")),
    frame("A", "K", 7, bytes([1, 0]) + str8("2201")),
    frame("E", "n", 0xFFFF, bytes([1]) + str8("2202") + bytes([1, 2])),
    frame("E", "z", 0xFFFF, str8("2201") + struct.pack(">Q", 1_700_000_000_000_000_000)),
    frame("S", "S", 0xFFFF, b"2026-01-05 09:00 2201 701 00:01:23"),
]


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


write("frame_stream", {
    "identify-then-requests": IDENTIFY_P3 + b"".join(CALL),
    "every-link-message": b"".join(LINK),
    "oversize-length": b"\xff\xff" + b"L" * 64,
    "zero-length": b"\x00\x00\x00\x02LH",
    "garbage": b"GET / HTTP/1.1\r\nHost: relay\r\n\r\n",
})
write("link_and_identify", {f"link-{i:02}": m for i, m in enumerate(LINK)} | {f"call-{i:02}": m for i, m in enumerate(CALL)})
write("licence_key", {
    "test-vector": b"AEAAAA7J-AEAQAGZB-HJGF2ABS-AACQAAYF-AAAFFPYA-ACC4S7P6-YNTNREBM-N7PD4F4A-"
                   b"RFSWO4QT-RF6XJ2HP-XBHQGKY2-BJOPBMXV-P5YVQXEM-GJCR3XBN-WCGS3QE5-JL6HWC43-"
                   b"HDKZCTTK-6RCLSFYD",
    "lowercase": b"aeaaaa7j-aeaqagzb-hjgf2abs-aacqaayf-aaaffpya-acc4s7p6-yntnrebm-n7pd4f4a-"
                 b"rfswo4qt-rf6xj2hp-xbhqgky2-bjopbmxv-p5yvqxem-gjcr3xbn-wcgs3qe5-jl6hwc43-"
                 b"hdkzcttk-6rclsfyd",
    "payload": bytes.fromhex("01000003E90101001B213A4C5D00320005000305000052BF0000"),
    "short": b"AEAAAA7J-AEAQAGZB",
})
with open(os.path.join(HERE, "..", "config", "relay.example.yaml"), "rb") as f:
    example = f.read()
with open(os.path.join(HERE, "..", "config", "soak.yaml"), "rb") as f:
    soak = f.read()
write("config_yaml", {
    "example": example,
    "soak": soak,
    "minimal": b"switches: [ { no: 1, address: 10.0.0.1 } ]\n",
    "users": b"switches: [ { no: 1, address: 10.0.0.1 }, { no: 2, address: 10.0.0.2 } ]\n"
             b"users:\n  - { ip: 10.0.0.51, name: Alex, switches: [1, 2], default_switch: 2, filtering: true }\n",
})
write("admin_json", {
    "user": b"\x00" + b'{"ip": "10.0.0.51", "name": "Alex", "switches": [1], "default_switch": 1, "filtering": true}',
    "user-put": b"\x01" + b'{"ip": "10.0.0.51", "name": "Alex", "switches": []}',
    "switch": b"\x02" + b'{"no": 2, "address": "10.0.1.2", "port": 5002, "easyset_password": "1234"}',
    "switch-put": b"\x03" + b'{"no": 1, "address": "10.0.1.1", "enabled": false}',
    "licence": b"\x04" + b'{"key": "AEAAAA7J-AEAQAGZB"}',
    "not-json": b"\x02" + b"{no: 2",
})
write("monitor_password", {
    "right": link("P", str8("s3cret")),
    "wrong": link("P", str8("secret")),
    "split-with-more": link("P", str8("s3cret")) + link("H"),
    "not-a-password": IDENTIFY_P3,
    "garbage": b"\x00\x01",
})

SHORT = (b"  59369  2501   8503      12/23 08:45:42 00:04:38 IC 0712345600         Incoming          0.0        0498765478        \r\n")
LONG = SHORT[:118] + b"ACME SALES".ljust(18) + b" " + b"5004".ljust(6) + b"00:00:01\r\n"
assert len(SHORT) == 121 and len(LONG) == 153, (len(SHORT), len(LONG))
write("smdr_record", {
    "short": SHORT,
    "long": LONG,
    "page-header": b"\x0cSMDR REPORT FOR MAIN 12/23 08:45:42\r\n" + b"=" * 119 + b"\r\n"
                   + b"  CALLID EXT    TRUNK     DATE  TIME     DURATION TY DIALLED            ACCOUNT           COST       CALLER ID         \r\n"
                   + SHORT,
    "status": SHORT[:50] + b"SU DND ON            " + SHORT[71:],
    "bad-month": SHORT[:26] + b"13" + SHORT[28:],
})


def journal_entry(seq, time_ms, switch, frame_bytes):
    import zlib
    body = struct.pack("<IQQB", len(frame_bytes), seq, time_ms, switch) + frame_bytes
    return body + struct.pack("<I", zlib.crc32(body))


S1 = frame("S", "S", 0xFFFF, SHORT)
S2 = frame("S", "S", 0xFFFF, LONG)
U1 = frame("U", "U", 0xFFFF, b"UCD 5004 00:10 3 1 0\r\n")
WHOLE = journal_entry(1, 1796083200000, 1, S1) + journal_entry(2, 1796083201000, 2, S2) + journal_entry(3, 1796083202000, 1, U1)
write("spool_journal", {
    "three": WHOLE,
    "torn": WHOLE[:-7],
    "bad-crc": WHOLE[:40] + bytes([WHOLE[40] ^ 1]) + WHOLE[41:],
    "out-of-order": journal_entry(1, 1, 1, S1) + journal_entry(1, 2, 1, S1),
    "empty": b"",
})

# The gateway: the first byte picks protocol 3 (odd) and the default switch; JSON text, a NUL,
# then the session's frames, which the bridge turns into messages one by one and batched.
# (The other gateway seeds, JSON text only, were written by hand.)
GATEWAY_EVENTS = [
    frame("E", "d", 0xFFFF, bytes([1]) + str8("2201") + bytes([0, 1]) + str8("2202")),
    frame("E", "n", 0xFFFF, bytes([1]) + str8("2202") + bytes([0, 1]) + str8("2201")),
    link("W", bytes([1, 0])),
    frame("A", "K", 0, bytes([1, 0])),
    link("H"),
    frame("E", "d", 0xFFFF, bytes([1]) + str8("2201") + bytes([0, 1]) + str8("2202")),
    frame("E", "z", 0xFFFF, bytes([2]) + str8("2203")),
]
write("gateway_json", {
    "events": bytes([3]) + b'{"type":"request","id":1,"code":"K","fields":["2201","2202"]}'
    + b"\0" + b"".join(GATEWAY_EVENTS),
})
