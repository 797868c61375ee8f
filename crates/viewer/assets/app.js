// convscope viewer: plain JavaScript over the server's /api/ (see the README's API table).
// The whole view lives in the page's URL, so every view can be shared as a link.
"use strict";

const $ = (id) => document.getElementById(id);
const url0 = new URL(location.href);
const TOKEN = url0.searchParams.get("token") || "";
const VIEW_KEYS = ["image", "image2", "layer", "channel", "class", "method", "saliency",
  "size", "crop", "preprocess", "opacity"];

const state = {};
let info = null;
let model = null;
let filterPoll = null;
let examplesPoll = null;
let channelValues = null;

// Counters a test (or a curious person) can read from the page.
const marks = { layers: 0, grids: 0, channels: 0, overlays: 0, filters: 0, examples: 0, uploads: 0, errors: 0 };
function mark(name) {
  marks[name] += 1;
  document.body.dataset[name] = String(marks[name]);
}

function readView() {
  const q = new URL(location.href).searchParams;
  for (const k of VIEW_KEYS) state[k] = q.get(k) || "";
}

function writeView(push) {
  const u = new URL(location.href);
  for (const k of VIEW_KEYS) {
    if (state[k]) u.searchParams.set(k, state[k]); else u.searchParams.delete(k);
  }
  if (u.href !== location.href) history[push ? "pushState" : "replaceState"](null, "", u);
}

function api(path, params) {
  const u = new URL("/api/" + path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== "" && v !== undefined && v !== null) u.searchParams.set(k, v);
  }
  u.searchParams.set("token", TOKEN);
  return u;
}

function showError(message) {
  const e = $("error");
  e.textContent = message;
  e.hidden = false;
  mark("errors");
}

function clearError() {
  $("error").hidden = true;
}

// Fetches an API URL; a 4xx/5xx shows its one-line error and throws.
async function call(u, options) {
  const r = await fetch(u, options);
  if (!r.ok && r.status !== 202) {
    let message = `${r.status} ${r.statusText}`;
    try { message = (await r.json()).error || message; } catch (_) { /* not JSON */ }
    showError(message);
    throw new Error(message);
  }
  return r;
}

async function getJson(path, params) {
  return (await call(api(path, params))).json();
}

// Loads an image from the API into an <img>, through fetch so errors are shown.
async function loadImage(img, path, params) {
  const r = await call(api(path, params));
  const blob = await r.blob();
  if (img.dataset.blob) URL.revokeObjectURL(img.dataset.blob);
  const src = URL.createObjectURL(blob);
  img.dataset.blob = src;
  await new Promise((resolve, reject) => {
    img.onload = resolve;
    img.onerror = () => reject(new Error("the picture did not decode"));
    img.src = src;
  });
  img.dataset.loaded = "1";
  return img;
}

function inputParams(image) {
  return { image, size: state.size, crop: state.crop, preprocess: state.preprocess };
}

function fmt(v) {
  if (typeof v !== "number" || !isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(3);
  return String(Number(v.toPrecision(4)));
}

// ---- the model: layer list -------------------------------------------------------------

function renderLayers() {
  const body = $("layers").querySelector("tbody");
  body.textContent = "";
  for (const l of model.layers) {
    const tr = document.createElement("tr");
    tr.dataset.layer = l.name;
    for (const text of [l.index, l.name, l.ops, `[${l.shape.join(", ")}]`, l.params.toLocaleString()]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    if (l.shape.length !== 4) tr.classList.add("flat");
    tr.addEventListener("click", () => selectLayer(l.name));
    body.appendChild(tr);
  }
  $("total-params").textContent = `${model.total_params.toLocaleString()} parameters`;
  mark("layers");
}

function highlightLayer() {
  for (const tr of $("layers").querySelectorAll("tbody tr")) {
    tr.classList.toggle("selected", tr.dataset.layer === state.layer);
  }
}

// ---- images and input options ------------------------------------------------------------

async function refreshImages() {
  const list = await getJson("images");
  for (const [select, blank] of [[$("image"), false], [$("image2"), true]]) {
    const keep = select.value;
    select.textContent = "";
    if (blank) select.appendChild(new Option("—", ""));
    for (const i of list) select.appendChild(new Option(`${i.name}${i.kind === "upload" ? " (upload)" : ""}`, i.id));
    select.value = keep;
  }
  return list;
}

async function upload(file) {
  clearError();
  const r = await call(api("images", { name: file.name }), { method: "POST", body: file });
  const entry = await r.json();
  await refreshImages();
  mark("uploads");
  state.image = entry.id;
  $("image").value = entry.id;
  await update(true);
}

// ---- views -----------------------------------------------------------------------------------

async function showInputs() {
  await loadImage($("input-img"), "input", inputParams(state.image));
  $("input-cap").textContent = $("image").selectedOptions[0]?.textContent || state.image;
  $("input2-fig").hidden = !state.image2;
  if (state.image2) {
    await loadImage($("input2-img"), "input", inputParams(state.image2));
    $("input2-cap").textContent = $("image2").selectedOptions[0]?.textContent || state.image2;
  }
  const pred = await getJson("predictions", { ...inputParams(state.image), top: 5 });
  const ol = $("predictions");
  ol.textContent = "";
  for (const p of pred.top) {
    const li = document.createElement("li");
    li.dataset.class = p.class;
    li.className = "clickable";
    li.textContent = `${p.label} — ${(100 * p.probability).toFixed(1)} %`;
    li.classList.toggle("selected", String(p.class) === state.class);
    li.addEventListener("click", () => { state.class = String(p.class); update(true); });
    ol.appendChild(li);
  }
}

async function showClass() {
  const view = $("class-view");
  view.hidden = state.class === "";
  if (view.hidden) return;
  const method = state.method || "gradcam";
  $("cam-method").value = method;
  const jobs = [[state.image, "cam-base", "cam-heat", "cam-cap"]];
  if (state.image2) jobs.push([state.image2, "cam2-base", "cam2-heat", "cam2-cap"]);
  $("cam2-fig").hidden = !state.image2;
  for (const [image, base, heat, cap] of jobs) {
    const params = { ...inputParams(image), class: state.class, method };
    const [meta] = await Promise.all([
      getJson("cam", { ...params, format: "json" }),
      loadImage($(base), "input", inputParams(image)),
      loadImage($(heat), "cam", { ...params, format: "heatmap" }),
    ]);
    $("class-name").textContent = `${meta.class}: ${meta.label}`;
    $(cap).textContent = `${meta.method} at ${meta.layer}` +
      (meta.map_rule ? ` (${meta.map_rule})` : "") +
      (meta.probability != null ? `, p = ${(100 * meta.probability).toFixed(1)} %` : "") +
      (meta.all_zero ? " — no positive evidence at this layer" : "");
  }
  applyOpacity();
  mark("overlays");
  $("saliency-fig").hidden = !state.saliency;
  if (state.saliency) {
    $("saliency-method").value = state.saliency;
    await loadImage($("saliency-img"), "saliency", { ...inputParams(state.image), class: state.class, method: state.saliency });
    $("saliency-cap").textContent = `${state.saliency} saliency`;
  }
}

function applyOpacity() {
  const o = (state.opacity === "" ? 60 : Number(state.opacity)) / 100;
  $("opacity").value = String(Math.round(o * 100));
  for (const id of ["cam-heat", "cam2-heat"]) $(id).style.opacity = String(o);
}

const gridLayouts = {};

// The page asks for each grid at the maps' own size, without the title (the page shows the
// name and shape itself), and lets the browser enlarge it pixel for pixel to cells of at
// least 48 px: the same picture as the CLI's grid, for a sixteenth of the pixels to draw,
// encode and send (docs/design.md, "Viewer grids").
const GRID = { cell: 1, title: 0 };
const GRID_CELL = 48;

function sizeGrid(img, g) {
  const k = Math.max(1, Math.ceil(GRID_CELL / Math.max(g.cell_width, g.cell_height)));
  img.style.width = `${g.width * k}px`;
  // Enlarged cells stay sharp squares; a grid the page must shrink is smoothed instead.
  img.style.imageRendering = k > 1 ? "pixelated" : "auto";
}

async function showLayer() {
  const view = $("layer-view");
  view.hidden = !state.layer;
  highlightLayer();
  if (view.hidden) return;
  $("layer-name").textContent = state.layer;
  const info = await getJson("activations", { ...inputParams(state.image), layer: state.layer, ...GRID, format: "json" });
  const s = info.stats;
  $("layer-stats").textContent = `shape [${info.shape.join(", ")}] · mean ${fmt(s.mean)} · std ${fmt(s.std)} · ` +
    `min ${fmt(s.min)} · max ${fmt(s.max)} · sparsity ${(100 * s.zero_fraction).toFixed(1)} % zeros · ` +
    `${s.blank_channels} of ${s.channels} channels blank` +
    (info.blank.length ? ` (${info.blank.slice(0, 20).join(", ")}${info.blank.length > 20 ? ", …" : ""})` : "");
  if (!info.grid) {
    $("grid-img").hidden = true;
    $("layer-stats").textContent += " — not a spatial map: no grid";
    return;
  }
  $("grid-img").hidden = false;
  gridLayouts["grid-img"] = info.grid;
  sizeGrid($("grid-img"), info.grid);
  const loads = [loadImage($("grid-img"), "activations", { ...inputParams(state.image), layer: state.layer, ...GRID })];
  $("grid2-fig").hidden = !state.image2;
  if (state.image2) {
    gridLayouts["grid2-img"] = info.grid;
    sizeGrid($("grid2-img"), info.grid);
    $("grid2-cap").textContent = $("image2").selectedOptions[0]?.textContent || state.image2;
    loads.push(loadImage($("grid2-img"), "activations", { ...inputParams(state.image2), layer: state.layer, ...GRID }));
  }
  await Promise.all(loads);
  mark("grids");
}

// The channel under a click on a grid picture (the server says where each cell is).
function channelAt(img, event) {
  const g = gridLayouts[img.id];
  if (!g) return null;
  const x = event.offsetX * img.naturalWidth / img.clientWidth;
  const y = event.offsetY * img.naturalHeight / img.clientHeight;
  const dx = x - g.x0, dy = y - g.y0;
  if (dx < 0 || dy < 0) return null;
  const px = g.cell_width + g.separator, py = g.cell_height + g.separator;
  const col = Math.floor(dx / px), row = Math.floor(dy / py);
  if (dx % px >= g.cell_width || dy % py >= g.cell_height || col >= g.columns) return null;
  const k = row * g.columns + col;
  return k < model.layers.find((l) => l.name === state.layer).shape[1] ? k : null;
}

function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const major = bytes[6];
  const view = new DataView(buffer);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = (major === 1 ? 10 : 12) + headerLen;
  return new Float32Array(buffer.slice(start));
}

async function showChannel() {
  const view = $("channel-view");
  view.hidden = !state.layer || state.channel === "";
  stopFilter();
  stopExamples(view.hidden ? undefined : state.layer);
  if (view.hidden) return;
  const params = { ...inputParams(state.image), layer: state.layer, channel: state.channel };
  $("channel-name").textContent = `${state.channel} of ${state.layer}`;
  const [meta, , raw] = await Promise.all([
    getJson("activations", { ...params, format: "json" }),
    loadImage($("channel-img"), "activations", params),
    call(api("activations", { ...params, format: "npy" })).then((r) => r.arrayBuffer()),
  ]);
  channelValues = { meta, values: parseNpy(raw) };
  $("channel-stats").textContent = `${meta.height}×${meta.width} · min ${fmt(meta.min)} · max ${fmt(meta.max)} · ` +
    `mean ${fmt(meta.mean)} · ${(100 * meta.zero_fraction).toFixed(1)} % zeros${meta.blank ? " · blank" : ""}`;
  mark("channels");
  startFilter();
  startExamples();
}

function showValueUnderCursor(event) {
  if (!channelValues) return;
  const img = $("channel-img");
  const { meta, values } = channelValues;
  const x = event.offsetX * img.naturalWidth / img.clientWidth;
  const y = event.offsetY * img.naturalHeight / img.clientHeight;
  const [bx, by, bw, bh] = meta.map_box;
  if (x < bx || y < by || x >= bx + bw || y >= by + bh) return;
  const col = Math.min(meta.width - 1, Math.floor((x - bx) * meta.width / bw));
  const row = Math.min(meta.height - 1, Math.floor((y - by) * meta.height / bh));
  $("channel-value").textContent = `row ${row}, column ${col}: ${fmt(values[row * meta.width + col])}`;
}

// ---- filter patterns: a background job, polled while this channel is shown ---------------

function filterParams() {
  return { layer: state.layer, channel: state.channel, preprocess: state.preprocess, recipe: $("filter-recipe").value };
}

function stopFilter() {
  if (filterPoll) {
    clearTimeout(filterPoll.timer);
    if (!filterPoll.done) fetch(api("filter", filterPoll.params), { method: "DELETE" }).catch(() => {});
    filterPoll = null;
  }
}

function startFilter() {
  const params = filterParams();
  const poll = { params, done: false, timer: null };
  filterPoll = poll;
  $("filter-img").removeAttribute("src");
  $("filter-img").dataset.loaded = "";
  $("filter-progress").value = 0;
  const step = async () => {
    if (filterPoll !== poll) return;
    let status;
    try {
      status = await getJson("filter", { ...params, format: "json" });
    } catch (e) {
      $("filter-state").textContent = "failed";
      poll.done = true;
      return;
    }
    if (filterPoll !== poll) return;
    if (status.total) $("filter-progress").value = status.done / status.total;
    $("filter-state").textContent = status.state;
    if (status.state === "done") {
      poll.done = true;
      $("filter-progress").value = 1;
      await loadImage($("filter-img"), "filter", params);
      $("filter-img").dataset.recipe = params.recipe;
      mark("filters");
      return;
    }
    poll.timer = setTimeout(step, 300);
  };
  step();
}

// ---- dataset examples: the folder images a channel responds to most and least ------------
// One background job per layer covers every channel; it is polled while a channel is shown.

// Stops polling; cancels the job unless the next view wants the same layer's job (one job
// covers every channel of a layer, so moving to another channel keeps its progress).
function stopExamples(nextLayer) {
  if (examplesPoll) {
    clearTimeout(examplesPoll.timer);
    const same = nextLayer !== undefined && nextLayer === examplesPoll.params.layer;
    if (!examplesPoll.done && !same) fetch(api("examples", examplesPoll.params), { method: "DELETE" }).catch(() => {});
    examplesPoll = null;
  }
}

function showExamples(found, params) {
  for (const end of ["top", "bottom"]) {
    const box = $("examples-" + end);
    box.replaceChildren();
    found[end].forEach((entry, rank) => {
      const fig = document.createElement("figure");
      const img = document.createElement("img");
      img.alt = `${end} ${rank + 1}: ${entry.image}`;
      const cap = document.createElement("figcaption");
      cap.textContent = `${fmt(entry.score)} · ${entry.image}`;
      cap.title = `${entry.image}: score ${entry.score} at row ${entry.y}, column ${entry.x}`;
      fig.append(img, cap);
      fig.addEventListener("click", () => { state.image = entry.image; update(true); });
      box.appendChild(fig);
      loadImage(img, "examples/crop", { ...params, end, rank }).catch(() => {});
    });
  }
  $("examples-state").textContent = `${found.images_used} images` +
    (found.skipped ? `, ${found.skipped} skipped` : "");
}

function startExamples() {
  $("examples").hidden = !info.images_folder;
  $("top-images").hidden = info.images_folder;
  if (!info.images_folder) return;
  const params = { layer: state.layer, channel: state.channel };
  const poll = { params, done: false, timer: null };
  examplesPoll = poll;
  $("examples-top").replaceChildren();
  $("examples-bottom").replaceChildren();
  $("examples-progress").value = 0;
  const step = async () => {
    if (examplesPoll !== poll) return;
    let found;
    try {
      found = await getJson("examples", params);
    } catch (e) {
      $("examples-state").textContent = "failed";
      poll.done = true;
      return;
    }
    if (examplesPoll !== poll) return;
    if (found.state === "done") {
      poll.done = true;
      $("examples-progress").value = 1;
      showExamples(found, params);
      mark("examples");
      return;
    }
    if (found.total) $("examples-progress").value = found.done / found.total;
    $("examples-state").textContent = found.state;
    poll.timer = setTimeout(step, 300);
  };
  step();
}

// ---- putting it together ---------------------------------------------------------------

async function update(push) {
  writeView(push);
  clearError();
  $("status").textContent = "working…";
  try {
    await showInputs();
    await Promise.all([showClass(), showLayer()]);
    await showChannel();
    $("status").textContent = "";
  } catch (e) {
    $("status").textContent = "";
    if ($("error").hidden) showError(String(e.message || e));
  }
}

function selectLayer(name) {
  state.layer = name;
  state.channel = "";
  update(true);
}

function wire() {
  $("image").addEventListener("change", () => { state.image = $("image").value; update(true); });
  $("image2").addEventListener("change", () => { state.image2 = $("image2").value; update(true); });
  $("upload").addEventListener("change", () => { const f = $("upload").files[0]; if (f) upload(f).catch(() => {}); });
  $("size").addEventListener("change", () => { state.size = $("size").value.trim(); update(true); });
  $("crop").addEventListener("change", () => { state.crop = $("crop").checked ? "1" : "0"; update(true); });
  $("preprocess").addEventListener("change", () => { state.preprocess = $("preprocess").value; update(true); });
  $("cam-method").addEventListener("change", () => { state.method = $("cam-method").value; update(true); });
  $("saliency-method").addEventListener("change", () => { state.saliency = $("saliency-method").value; update(true); });
  $("filter-recipe").addEventListener("change", () => { stopFilter(); if (state.layer && state.channel !== "") startFilter(); });
  $("opacity").addEventListener("input", () => { state.opacity = $("opacity").value; applyOpacity(); writeView(false); });
  for (const id of ["grid-img", "grid2-img"]) {
    $(id).addEventListener("click", (e) => {
      const k = channelAt($(id), e);
      if (k !== null) { state.channel = String(k); update(true); }
    });
  }
  $("channel-img").addEventListener("mousemove", showValueUnderCursor);
  document.addEventListener("dragover", (e) => { e.preventDefault(); document.body.classList.add("dropping"); });
  document.addEventListener("dragleave", () => document.body.classList.remove("dropping"));
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    document.body.classList.remove("dropping");
    const f = e.dataTransfer.files[0];
    if (f) upload(f).catch(() => {});
  });
  window.addEventListener("popstate", () => { readView(); applyInputOptions(); update(false); });
  window.addEventListener("pagehide", () => { stopFilter(); stopExamples(); });
}

function applyInputOptions() {
  $("size").value = state.size;
  $("crop").checked = state.crop === "" ? info.input.crop : state.crop === "1";
  $("preprocess").value = state.preprocess || info.input.preprocess;
  if (state.image) $("image").value = state.image;
  $("image2").value = state.image2;
}

async function start() {
  readView();
  wire();
  try {
    [info, model] = await Promise.all([getJson("info"), getJson("model")]);
  } catch (e) {
    return;
  }
  for (const p of info.presets) $("preprocess").appendChild(new Option(p, p));
  for (const m of info.cam_methods) $("cam-method").appendChild(new Option(m, m));
  for (const m of info.saliency_methods) $("saliency-method").appendChild(new Option(m, m));
  $("size").placeholder = info.input.size || info.input.model_size || "model's";
  renderLayers();
  const images = await refreshImages();
  if (!state.image) state.image = images.length > 1 && images[1].kind === "file" ? images[1].id : "scene";
  applyInputOptions();
  document.body.dataset.ready = "1";
  await update(false);
}

start();
