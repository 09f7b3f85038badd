// The lyrics panel's "look inside" view (run by gradio as the panel's js_on_load, with
// `element`, `server` and `watch` given). Hover or tap a character: the model's five likeliest
// characters there. Select it: shading over the window it read, by attention, per layer and head.
// The page fills in VOCAB, LAYERS and HEADS before this runs.
const shown = (c) => (c === " " ? "\u2423" : c === "\n" ? "\u21b5" : c);
const escape = (c) => c.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const percent = (permille) => (permille / 10).toFixed(1) + "%";
const chars = () => [...element.querySelectorAll(".song span")];
const generated = (target) => target.closest && target.closest(".song span[data-top]");

const tip = document.createElement("div");
tip.className = "alt-tip";
tip.id = "alt-tip";
tip.hidden = true;
document.body.appendChild(tip);

const bar = document.createElement("div");
bar.className = "inspect-bar";
bar.id = "inspect-bar";
const options = (n, all, name) =>
  `<option value="all">${all}</option>` + [...Array(n).keys()].map((i) => `<option value="${i}">${name} ${i + 1}</option>`).join("");
bar.innerHTML = `<span class="inspect-hint">Select a character to see what it attended to.</span>
  <label>Layer <select id="attention-layer">${options(LAYERS, "all layers", "layer")}</select></label>
  <label>Head <select id="attention-head">${options(HEADS, "all heads, averaged", "head")}</select></label>`;
// Above the panel's scroll box, so that it stays in view while the song scrolls.
(element.closest(".html-container") || element).before(bar);
const layerChoice = bar.querySelector("#attention-layer");
const headChoice = bar.querySelector("#attention-head");

function explain(span) {
  const drawn = span.textContent;
  const top = span.dataset.top.split(",").map((pair) => pair.split(" ").map(Number));
  const modelPercent = Number(span.dataset.prob) / 10;
  const rows = top.map(([id, permille]) =>
    `<tr class="${VOCAB[id] === drawn ? "drawn" : ""}"><td class="alt-char">${escape(shown(VOCAB[id]))}</td><td>${percent(permille)}</td></tr>`);
  if (!top.some(([id]) => VOCAB[id] === drawn)) {
    rows.push(`<tr class="drawn"><td class="alt-char">${escape(shown(drawn))}</td><td>${span.title} (drawn, not in the top five)</td></tr>`);
  }
  const drawnPercent = Number(span.dataset.drawn) / 10;
  const odds = Math.abs(Number(span.dataset.drawn) - Number(span.dataset.prob)) >= 1
    ? `Temperature, top-k or top-p changed its odds: the model gave it ${modelPercent.toFixed(1)}%, it was drawn at ${drawnPercent.toFixed(1)}%.`
    : "Drawn at the model's own odds.";
  return `<div class="alt-title">The model's likeliest characters here</div><table>${rows.join("")}</table><div class="alt-odds">${odds}</div>`;
}

function showTip(span) {
  tip.innerHTML = explain(span);
  tip.hidden = false;
  const box = span.getBoundingClientRect();
  const width = Math.min(280, window.innerWidth - 16);
  tip.style.left = Math.max(8, Math.min(box.left, window.innerWidth - width - 8)) + "px";
  tip.style.top = box.bottom + 6 + "px";
}

let selected = null; // index of the selected character among the panel's spans
let attention = null; // {chars, weights[layer][head][position]} for it

function shade() {
  const all = chars();
  for (const s of all) {
    s.classList.remove("attended", "selected");
    s.style.removeProperty("--attention");
  }
  if (selected === null || !attention || selected >= all.length) return;
  const layers = layerChoice.value === "all" ? attention.weights : [attention.weights[Number(layerChoice.value)]];
  const heads = (layer) => (headChoice.value === "all" ? layer : [layer[Number(headChoice.value)]]);
  const n = attention.chars.length;
  const mean = new Array(n).fill(0);
  let rows = 0;
  for (const layer of layers) {
    for (const head of heads(layer)) {
      head.forEach((w, i) => (mean[i] += w));
      rows += 1;
    }
  }
  const top = Math.max(...mean) || 1;
  const start = selected - n;
  mean.forEach((w, i) => {
    const s = all[start + i];
    if (!s) return;
    s.classList.add("attended");
    s.style.setProperty("--attention", (w / top).toFixed(3));
    s.dataset.attention = (w / rows).toFixed(4);
  });
  all[selected].classList.add("selected");
}

async function select(span) {
  const all = chars();
  const i = all.indexOf(span);
  const read = Number(span.dataset.window); // how many characters the model read to choose it
  const before = all.slice(0, i).map((s) => s.textContent).join("");
  selected = i;
  const view = await server.attention_at(before, read);
  if (selected === i && view) {
    attention = view; // the reply for the character still selected, not an earlier click's
    shade();
  }
}

element.addEventListener("mouseover", (e) => {
  const span = generated(e.target);
  if (span) showTip(span);
});
element.addEventListener("mouseout", (e) => {
  if (generated(e.target)) tip.hidden = true;
});
element.addEventListener("click", (e) => {
  const span = generated(e.target);
  if (!span) return;
  showTip(span);
  select(span);
});
layerChoice.addEventListener("change", shade);
headChoice.addEventListener("change", shade);
let written = 0; // generated characters in the panel at the last update
watch("value", () => {
  // A new song starts with fewer generated characters than the last one had: forget the selection.
  const now = element.querySelectorAll(".song span[data-top]").length;
  if (now < written) {
    selected = null;
    attention = null;
    tip.hidden = true;
  }
  written = now;
  shade();
});
