// The page of `speakergmm serve`: records 16 kHz mono WAV in the browser and calls the API.
// No framework, no build step, nothing from elsewhere (the service's CSP allows only itself).
"use strict";

const RATE = 16000;
const $ = (id) => document.getElementById(id);
let clip = null;          // the last recording or file, as a Blob
let clipName = "recording.wav";

// --- token -------------------------------------------------------------------------------

function token() { return sessionStorage.getItem("speakergmm-token") || ""; }

$("token-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  sessionStorage.setItem("speakergmm-token", $("token").value.trim());
  $("token").value = "";
  await refresh();
});

async function api(method, path, form) {
  const headers = token() ? { "Authorization": "Bearer " + token() } : {};
  const response = await fetch(path, { method, body: form, headers });
  let body = null;
  try { body = await response.json(); } catch (e) { body = { error: response.statusText }; }
  if (!response.ok) {
    const error = new Error(body.error || ("HTTP " + response.status));
    error.status = response.status;
    throw error;
  }
  return body;
}

// --- recording ---------------------------------------------------------------------------

let recorder = null;

async function startRecording() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false,
             autoGainControl: false } });
  // The browser resamples the microphone to 16 kHz for this context.
  const context = new AudioContext({ sampleRate: RATE });
  const source = context.createMediaStreamSource(stream);
  const node = context.createScriptProcessor(4096, 1, 1);
  const chunks = [];
  const started = performance.now();
  node.onaudioprocess = (e) => {
    chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    $("record-time").textContent = ((performance.now() - started) / 1000).toFixed(1) + " s";
  };
  source.connect(node);
  node.connect(context.destination);
  recorder = { stream, context, node, chunks };
}

async function stopRecording() {
  const { stream, context, node, chunks } = recorder;
  recorder = null;
  node.disconnect();
  stream.getTracks().forEach((t) => t.stop());
  const rate = context.sampleRate;
  await context.close();
  const samples = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) { samples.set(c, at); at += c.length; }
  useClip(wav(rate === RATE ? samples : resample(samples, rate, RATE), RATE),
          "recording.wav", samples.length / rate);
}

function resample(x, from, to) {  // linear: only for browsers that ignore sampleRate
  const n = Math.floor(x.length * to / from);
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const t = i * from / to, j = Math.floor(t), f = t - j;
    y[i] = (x[j] || 0) * (1 - f) + (x[j + 1] || 0) * f;
  }
  return y;
}

function wav(samples, rate) {  // 16-bit PCM, mono
  const buffer = new ArrayBuffer(44 + 2 * samples.length);
  const view = new DataView(buffer);
  const text = (at, s) => { for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * samples.length, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true);
  view.setUint16(22, 1, true); view.setUint32(24, rate, true);
  view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, 2 * samples.length, true);
  for (let i = 0; i < samples.length; i++) {
    const s = Math.max(-1, Math.min(1, samples[i]));
    view.setInt16(44 + 2 * i, s < 0 ? s * 0x8000 : s * 0x7fff, true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}

function useClip(blob, name, seconds) {
  clip = blob;
  clipName = name;
  $("playback").src = URL.createObjectURL(blob);
  $("playback").hidden = false;
  setStatus("record-status", seconds === null ? `File ${name} ready.` :
    `Recorded ${seconds.toFixed(1)} s. Now enroll, verify or identify it.`);
}

$("record-button").addEventListener("click", async () => {
  const button = $("record-button");
  try {
    if (recorder === null) {
      await startRecording();
      button.textContent = "■ Stop";
      button.classList.add("recording");
      setStatus("record-status", "Recording… speak now.");
    } else {
      button.textContent = "● Record";
      button.classList.remove("recording");
      await stopRecording();
    }
  } catch (e) {
    setStatus("record-status", "The microphone could not be used: " + e.message, true);
  }
});

$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) useClip(file, file.name, null);
});

// --- asking ------------------------------------------------------------------------------

function withClip(fields) {
  if (clip === null) throw new Error("record something first (step 2)");
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append("audio", clip, clipName);
  return form;
}

async function ask(action) {
  const buttons = document.querySelectorAll("#actions button");
  buttons.forEach((b) => { b.disabled = true; });
  showVerdict("none", "Working…", null);
  $("details").textContent = "";
  $("details").classList.remove("error");
  $("caution").textContent = "";
  try {
    await action();
  } catch (e) {
    showVerdict("none", "No answer.", null);
    $("details").textContent = e.message;
    $("details").classList.add("error");
    if (e.status === 401) sessionStorage.removeItem("speakergmm-token");
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

$("enroll-form").addEventListener("submit", (event) => {
  event.preventDefault();
  ask(async () => {
    const name = $("enroll-name").value.trim();
    const mode = $("enroll-mode").value;
    const form = withClip({ mode });
    const info = await api("POST", "/v1/speakers/" + encodeURIComponent(name), form);
    showVerdict("accept", `Enrolled ${info.id}`, null);
    $("details").textContent = `${info.utterances} recording(s), ${info.seconds.toFixed(1)} s of speech in all.`;
    $("caution").textContent = (info.notes || []).join(" ");
    await refresh(info.id);
  });
});

$("verify-form").addEventListener("submit", (event) => {
  event.preventDefault();
  ask(async () => {
    const speaker = $("verify-name").value;
    const r = await api("POST", "/v1/verify", withClip({ speaker }));
    const p = r.posterior;
    if (r.accepted) {
      showVerdict("accept", `Yes: this sounds like ${r.speaker}`, p);
    } else {
      showVerdict("reject", `No: this does not sound like ${r.speaker}`, p);
    }
    $("details").textContent = r.llr === null
      ? `Score ${r.score.toFixed(3)} against threshold ${r.threshold.toFixed(3)} (the store is not calibrated). ${r.seconds.toFixed(1)} s of speech.`
      : `The recording is ${evidence(r.llr)} (LLR ${r.llr.toFixed(2)}); `
        + `probability it is ${r.speaker}: ${(100 * p).toFixed(1)}% at a prior of ${r.prior}. `
        + `${r.seconds.toFixed(1)} s of speech.`;
    $("caution").textContent = [r.caution, ...(r.notes || [])].filter(Boolean).join(" ");
  });
});

$("identify-form").addEventListener("submit", (event) => {
  event.preventDefault();
  ask(async () => {
    const r = await api("POST", "/v1/identify", withClip({}));
    const best = r.ranking[0];
    const p = best && best.posterior !== undefined ? best.posterior : null;
    if (r.speaker) showVerdict("accept", `This is ${r.speaker}`, p);
    else showVerdict("unknown", "Nobody enrolled: an unknown voice", p);
    const rows = r.ranking.slice(0, 3).map((e) => e.llr === undefined
      ? `${e.speaker} (score ${e.score.toFixed(3)})`
      : `${e.speaker} ${(100 * e.posterior).toFixed(1)}%`);
    $("details").textContent = "Closest: " + rows.join(", ")
      + (r.p_unknown !== null ? `; unknown ${(100 * r.p_unknown).toFixed(1)}%` : "")
      + `. ${r.seconds.toFixed(1)} s of speech.`;
    $("caution").textContent = [r.caution, ...(r.notes || [])].filter(Boolean).join(" ");
  });
});

function evidence(llr) {
  const ratio = Math.exp(Math.abs(llr));
  const times = ratio >= 1000 ? "over 1000" : ratio.toFixed(ratio < 10 ? 1 : 0);
  return llr >= 0 ? `${times} times more likely if it is them`
                  : `${times} times more likely if it is someone else`;
}

function showVerdict(kind, text, probability) {
  $("verdict").className = "verdict " + kind;
  $("verdict").textContent = text;
  $("bar-fill").className = kind;
  $("bar-fill").style.width = probability === null ? "0" : (100 * probability).toFixed(1) + "%";
}

// --- speakers ----------------------------------------------------------------------------

async function refresh(select) {
  try {
    const [list, store] = await Promise.all([api("GET", "/v1/speakers"), api("GET", "/v1/store")]);
    setStatus("token-status", token() ? "Token accepted." : "No token needed here.");
    const body = $("speakers").querySelector("tbody");
    body.replaceChildren();
    const claim = $("verify-name");
    const before = select || claim.value;
    claim.replaceChildren();
    for (const s of list.speakers) {
      const row = body.insertRow();
      for (const v of [s.id, s.utterances, s.seconds.toFixed(1) + " s", s.updated.slice(0, 19)]) {
        row.insertCell().textContent = v;
      }
      const remove = document.createElement("button");
      remove.textContent = "remove";
      remove.className = "small";
      remove.addEventListener("click", () => removeSpeaker(s.id));
      row.insertCell().appendChild(remove);
      claim.add(new Option(s.id, s.id, false, s.id === before));
    }
    const cal = store.calibration.source === "store" ? "its own calibration"
      : store.calibration.source === "system"
        ? (store.calibration.shift > 0 ? "the system's calibration, adapted to its impostors"
          : "the system's calibration")
        : "no calibration";
    $("store-line").textContent = `${store.speakers} enrolled; system `
      + `${store.system ? store.system.name : "not chosen yet"}; ${cal}.`;
  } catch (e) {
    // (a service started with --no-auth needs no token: it is asked for only when refused)
    setStatus("token-status", e.status === 401 && !token() ? "This service needs a token."
      : e.message, e.status !== 401 || Boolean(token()));
  }
}

async function removeSpeaker(id) {
  if (!confirm(`Remove ${id} and their recordings' statistics?`)) return;
  try {
    await api("DELETE", "/v1/speakers/" + encodeURIComponent(id));
  } catch (e) {
    setStatus("token-status", e.message, true);
  }
  await refresh();
}

function setStatus(id, text, error = false) {
  $(id).textContent = text;
  $(id).classList.toggle("error", error);
}

refresh();
