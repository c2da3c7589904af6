// The page at /: classify an image with a served model, and compare the served models' latency.
// Talks to this server only (GET /models, GET /samples, POST /predict).
"use strict";

const config = window.SKIPFOLD || { apiKeyHeader: "X-API-Key", needsKey: false };
const $ = (id) => document.getElementById(id);
const state = { models: [], image: null, imageName: "", comparing: false, latest: 0 };

function headers(extra = {}) {
  const key = $("key").value || sessionStorage.getItem("skipfold-key") || "";
  return key ? { ...extra, [config.apiKeyHeader]: key } : extra;
}

async function call(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers) });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message || "";
}

function describe(model) {
  const parts = [model.variant || "no card"];
  if (model.variant === "bn") parts.push(model.folded ? "folded" : "unfolded");
  if (model.precision) parts.push(model.precision);
  if (model.test_flip) parts.push("test-time flips");
  if (model.engine && model.engine !== "onnxruntime") {  // an OpenVINO engine: its own precision
    parts.push(`${model.engine} ${model.inference_precision}`);
  }
  return parts.join(", ");
}

async function loadModels() {
  const listed = await call("/models");
  // image classifiers only: any other model takes its tensors over /v2 (input_shape null)
  state.models = listed.models.filter((m) => m.input_shape);
  const others = listed.models.filter((m) => !m.input_shape).map((m) => m.name);
  $("others").hidden = !others.length;
  $("others").textContent = others.length
    ? `Also served, over the Open Inference Protocol only (not image classifiers): ${others.join(", ")}`
    : "";
  $("model").replaceChildren(...state.models.map((m) => new Option(m.name, m.name)));
  const names = state.models.map((m) => m.name);
  $("model").value = names.includes(listed.default) ? listed.default : names[0] || "";
  fillVersions();
}

function fillVersions() {
  const model = state.models.find((m) => m.name === $("model").value);
  const versions = model ? [...model.versions].reverse() : [];
  $("version").replaceChildren(...versions.map((v) => new Option(String(v), String(v))));
}

async function loadSamples() {
  const samples = await call("/samples");
  for (const sample of samples) {
    const button = document.createElement("button");
    button.type = "button";
    button.title = sample.label;
    button.dataset.label = sample.label;
    const image = new Image();
    image.src = sample.url;
    image.alt = sample.label;
    button.append(image);
    button.addEventListener("click", async () => {
      document.querySelectorAll("#samples button").forEach((b) => b.classList.remove("chosen"));
      button.classList.add("chosen");
      const blob = await (await fetch(sample.url)).blob();
      await classify(blob, sample.label);
    });
    $("samples").append(button);
  }
  return samples;
}

async function predict(model, version, blob, topK) {
  const query = new URLSearchParams({ model, top_k: String(topK) });
  if (version) query.set("version", version);
  const started = performance.now();
  const body = await call(`/predict?${query}`, {
    method: "POST",
    body: blob,
    headers: { "Content-Type": blob.type || "application/octet-stream" },
  });
  body.roundTripMs = performance.now() - started;
  return body;
}

async function classify(blob, name = blob.name || "pasted image") {
  state.image = blob;
  state.imageName = name;
  const request = ++state.latest;  // only the newest answer is shown
  showError("");
  $("preview").src = URL.createObjectURL(blob);
  try {
    const result = await predict($("model").value, $("version").value, blob, Number($("topk").value) || 5);
    if (request !== state.latest) return;
    render(result);
    $("result").dataset.image = name;
  } catch (error) {
    if (request !== state.latest) return;
    $("result").hidden = true;
    showError(error.message);
  }
}

function render(result) {
  const predictions = result.results[0].predictions;
  $("answer").innerHTML = "";
  const strong = document.createElement("strong");
  strong.id = "top1";
  strong.textContent = predictions[0].label;
  $("answer").append(strong, ` (${(100 * predictions[0].probability).toFixed(1)}%), ${result.model} version ${result.version}`);
  $("predictions").replaceChildren(...predictions.map((p) => {
    const item = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = p.label;
    const track = document.createElement("div");
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${(100 * p.probability).toFixed(2)}%`;
    track.append(bar);
    const value = document.createElement("span");
    value.className = "num";
    value.textContent = `${(100 * p.probability).toFixed(1)}%`;
    item.append(label, track, value);
    return item;
  }));
  const timings = { ...result.timings_ms, "round trip (browser)": result.roundTripMs };
  $("timings").replaceChildren(...Object.entries(timings).map(([stage, ms]) => {
    const row = document.createElement("tr");
    row.innerHTML = `<td>${stage}</td><td class="num">${ms.toFixed(3)} ms</td>`;
    return row;
  }));
  $("result").hidden = false;
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

async function compare(rounds = 31) {
  if (state.comparing || !state.image || !state.models.length) return;
  state.comparing = true;
  const rows = state.models.map((model) => ({ model, inference: [], roundTrip: [] }));
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const row of rows) {  // interleaved: A B C A B C ..., so drift hits all alike
        const result = await predict(row.model.name, "", state.image, 1);
        if (round === 1) continue;  // a warm-up round: the browser's first fetches are slower
        row.inference.push(result.timings_ms.inference);
        row.roundTrip.push(result.roundTripMs);
      }
      $("progress").textContent = round === 1 ? "warming up" : `round ${round - 1} of ${rounds - 1}`;
      if (round > 1) drawLatency(rows);
    }
  } catch (error) {
    showError(`latency comparison: ${error.message}`);
  } finally {
    state.comparing = false;
  }
}

function drawLatency(rows) {
  const medians = rows.map((r) => median(r.inference));
  const slowest = Math.max(...medians, 1e-9);
  $("latency").tBodies[0].replaceChildren(...rows.map((row, i) => {
    const tr = document.createElement("tr");
    tr.dataset.model = row.model.name;
    const cells = [row.model.name, describe(row.model), `${medians[i].toFixed(3)} ms`, "",
      `${median(row.roundTrip).toFixed(2)} ms`];
    cells.forEach((text, c) => {
      const td = document.createElement("td");
      if (c === 3) {
        td.className = "chart";
        const bar = document.createElement("div");
        bar.className = "bar";
        bar.style.width = `${(100 * medians[i] / slowest).toFixed(1)}%`;
        td.append(bar);
      } else {
        td.textContent = text;
        if (c === 2 || c === 4) td.className = "num";
      }
      tr.append(td);
    });
    return tr;
  }));
}

function wireInputs() {
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    const file = e.dataTransfer.files[0];
    if (file) classify(file);
  });
  document.addEventListener("paste", (e) => {
    const item = [...e.clipboardData.items].find((i) => i.type.startsWith("image/"));
    if (item) classify(item.getAsFile());
  });
  $("file").addEventListener("change", () => { if ($("file").files[0]) classify($("file").files[0]); });
  $("model").addEventListener("change", () => { fillVersions(); if (state.image) classify(state.image, state.imageName); });
  $("version").addEventListener("change", () => { if (state.image) classify(state.image, state.imageName); });
  $("topk").addEventListener("change", () => { if (state.image) classify(state.image, state.imageName); });
  $("key").addEventListener("change", () => { sessionStorage.setItem("skipfold-key", $("key").value); start(); });
  $("rerun").addEventListener("click", () => compare());
}

async function start() {
  $("key-field").hidden = !config.needsKey;
  try {
    await loadModels();
    if (!document.querySelector("#samples button")) {
      const samples = await loadSamples();
      if (!state.image && samples.length) {
        state.image = await (await fetch(samples[0].url)).blob();
      }
    }
    showError("");
    compare();
  } catch (error) {
    showError(config.needsKey && !$("key").value ? `${error.message}: enter the API key` : error.message);
  }
}

wireInputs();
start();
