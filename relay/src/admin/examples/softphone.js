// The softphone example: the relay's WebSocket/JSON gateway from a page, with no framework.
// Messages are documented in the README ("WebSocket/JSON gateway") and docs/gateway.schema.json.
"use strict";

const $ = (id) => document.getElementById(id);
const calls = new Map(); // call id -> { other, state }
let ws = null;
let nextId = 1;
let device = "";
let sw = 1;

// Fields may come from the address: ?device=2201&switch=1#token=… (the fragment, which the
// browser never sends, is the place for the token; ?token= works too).
const params = new URLSearchParams(location.search);
const fragment = new URLSearchParams(location.hash.slice(1));
for (const name of ["device", "switch", "token"]) {
  const value = fragment.get(name) ?? params.get(name);
  if (value !== null) $(name).value = value;
}

function setState(text, cls) {
  $("state").textContent = text;
  $("state").className = cls || "";
}

function enable(on) {
  for (const id of ["call", "answer", "clear"]) $(id).disabled = !on;
}

function send(message) {
  ws.send(JSON.stringify(message));
}

function request(code, fields) {
  const id = nextId++;
  send({ type: "request", id, switch: sw, code, fields });
  $("last-answer").textContent = "Request " + id + " (" + code + ") sent…";
}

const STATES = { d: "dialling", n: "ringing", e: "connected", h: "held", g: "connected", x: "cleared", t: "transferred" };

function onEvent(e) {
  const item = document.createElement("li");
  const f = e.fields;
  item.textContent = new Date(e.time_ms).toLocaleTimeString() + " SW" + e.switch + " " + e.code +
    (f ? " " + f.name + " " + e.device + " ↔ " + (f.other || "-") + " call " + f.call : " " + e.device + " " + e.body);
  $("events").prepend(item);
  if (!f || e.device !== device || !(e.code in STATES)) return;
  if (e.code === "x") calls.delete(f.call);
  else calls.set(f.call, { other: f.other, state: STATES[e.code] });
  renderCalls();
}

function renderCalls() {
  const body = $("calls").tBodies[0];
  body.replaceChildren();
  for (const [id, call] of calls) {
    const row = body.insertRow();
    row.dataset.call = id;
    for (const text of [String(id), call.other, call.state]) row.insertCell().textContent = text;
  }
}

function connect(event) {
  event.preventDefault();
  if (ws) ws.close();
  device = $("device").value.trim();
  sw = Number($("switch").value) || 1;
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const token = $("token").value;
  ws = new WebSocket(scheme + location.host + "/ws" + (token ? "?token=" + encodeURIComponent(token) : ""));
  setState("Connecting…");
  ws.onopen = () => send({ type: "identify", product: "call", name: "softphone example", devices: [{ switch: sw, device }] });
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    switch (msg.type) {
      case "identified":
        if (msg.result === 0) {
          const up = msg.switches.map((s) => "SW" + s.switch + (s.up ? " up" : " down")).join(", ");
          setState("Identified as Call watching " + device + " (" + up + ")", "up");
          enable(true);
        } else {
          setState("Refused: " + msg.reason, "down");
        }
        break;
      case "event": onEvent(msg); break;
      case "answer":
        $("last-answer").textContent = "Request " + msg.id + " (" + msg.code + "): result " + msg.result;
        break;
      case "switch": setState("Switch " + msg.switch + (msg.up ? " is up" : " is down"), msg.up ? "up" : "down"); break;
      case "close": setState("Closed by the relay: " + msg.text, "down"); break;
      case "error": $("last-answer").textContent = "Error: " + msg.error + (msg.field ? " (" + msg.field + ")" : ""); break;
    }
  };
  // The close code says why: 1001 the relay is stopping or lost its switches (come back
  // later), 1008 its rules (refused, too slow, …), 1009 a message too large.
  ws.onclose = (event) => {
    enable(false);
    if (!$("state").classList.contains("down")) {
      const why = event.reason ? ": " + event.reason + " (" + event.code + ")" : "";
      setState("Not connected" + why + ".", "down");
    }
  };
}

$("connect").addEventListener("submit", connect);
$("dial").addEventListener("submit", (event) => {
  event.preventDefault();
  request("K", [device, $("number").value.trim()]);
});
$("answer").addEventListener("click", () => request("N", [device]));
$("clear").addEventListener("click", () => request("D", [device]));
