// The lyrics panel (run by gradio as the panel's js_on_load, with `element`, `props`, `server` and
// `watch` given). Each update of the song carries only its new characters; the panel's template
// never shows the value, so gradio leaves the panel alone and this script appends them: the work
// per update stays the same however long the song gets. Hover or tap a character: the model's
// five likeliest characters there. Select it: shading over the window it read, by attention, per
// layer and head. The page fills in VOICES (each voice's vocabulary, layers and heads) before this
// runs; the panel's `voice` prop names the voice of the song on show.
const shown = (c) => (c === " " ? "\u2423" : c === "\n" ? "\u21b5" : c);
const escape = (c) => c.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const percent = (permille) => (permille / 10).toFixed(1) + "%";
const generated = (target) => target.closest && target.closest(".song span[data-top]");
// The song's characters, a span each: a rhymed line's letter is a span too, but no character.
const characters = () => [...song.querySelectorAll("span:not(.rhyme-letter)")];
const song = element.querySelector(".song");
const legendBox = element.querySelector(".legend");
const voice = () => VOICES[props.voice] || Object.values(VOICES)[0];

const tip = document.createElement("div");
tip.className = "alt-tip";
tip.id = "alt-tip";
tip.hidden = true;
document.body.appendChild(tip);

const bar = document.createElement("div");
bar.className = "inspect-bar";
bar.id = "inspect-bar";
bar.hidden = true; // until there is a song to copy or look inside
const options = (n, all, name) =>
  `<option value="all">${all}</option>` + [...Array(n).keys()].map((i) => `<option value="${i}">${name} ${i + 1}</option>`).join("");
bar.innerHTML = `<button type="button" id="copy" class="copy-song">Copy</button>
  <span class="inspect-hint">Select a character to shade what it attended to (the darkest: the most, in its window).</span>
  <span class="menus"><label>Layer <select id="attention-layer"></select></label>
  <label>Head <select id="attention-head"></select></label></span>`; // the two menus wrap together
// Above the panel's scroll box, so that it stays in view while the song scrolls.
(element.closest(".html-container") || element).before(bar);
const layerChoice = bar.querySelector("#attention-layer");
const headChoice = bar.querySelector("#attention-head");
const copyButton = bar.querySelector("#copy");
let menusFor = null;
function fillMenus() { // for the voice of the song on show
  if (menusFor === voice()) return;
  menusFor = voice();
  layerChoice.innerHTML = options(voice().layers, "all layers", "layer");
  headChoice.innerHTML = options(voice().heads, "all heads, averaged", "head");
}

copyButton.addEventListener("click", async () => {
  let copied = false;
  try {
    await navigator.clipboard.writeText(song.textContent); // innerText would add a break per line block
    copied = true;
  } catch (e) {
    // No clipboard API on a page served over plain http from another machine: copy the selection.
    const range = document.createRange();
    range.selectNodeContents(song);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    copied = document.execCommand("copy");
  }
  copyButton.textContent = copied ? "Copied" : "Select the song and copy it";
  setTimeout(() => (copyButton.textContent = "Copy"), 1500);
});

function explain(span) {
  const VOCAB = voice().vocab;
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
    ? `Temperature, top-k, top-p or the song's form changed its odds: the model gave it ${modelPercent.toFixed(1)}%, it was drawn at ${drawnPercent.toFixed(1)}%.`
    : "Drawn at the model's own odds.";
  // A character the form chose among what the model wanted least (serving.coloured marks it).
  const left = Number(span.dataset.form);
  const steered = span.dataset.form === undefined ? ""
    : `<div class="alt-odds">The song's form steered here: it left the model ${left < 1 ? "less than 0.1%" : percent(left)} of its probability.</div>`;
  return `<div class="alt-title">The model's likeliest characters here</div><table>${rows.join("")}</table><div class="alt-odds">${odds}</div>${steered}`;
}

function showTip(span) {
  tip.innerHTML = explain(span);
  tip.hidden = false;
  const box = span.getBoundingClientRect();
  const width = Math.min(280, window.innerWidth - 16);
  tip.style.left = Math.max(8, Math.min(box.left, window.innerWidth - width - 8)) + "px";
  const below = box.bottom + 6, height = tip.offsetHeight; // above the character where there is no room below
  tip.style.top = (below + height <= window.innerHeight ? below : Math.max(8, box.top - 6 - height)) + "px";
}

let selected = null; // index of the selected character among the panel's spans
let attention = null; // {chars, weights[layer][head][position]} for it
let shaded = []; // the spans shaded now

function shade() {
  for (const s of shaded) {
    s.classList.remove("attended", "selected");
    s.style.removeProperty("--attention");
  }
  shaded = [];
  const all = characters();
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
  // Scaled to the window's strongest weight, through a square root: a head that gives half its
  // attention to one character would otherwise leave the rest too faint to see.
  const top = Math.max(...mean) || 1;
  const start = selected - n;
  mean.forEach((w, i) => {
    const s = all[start + i];
    if (!s) return;
    s.classList.add("attended");
    s.style.setProperty("--attention", Math.sqrt(w / top).toFixed(3));
    s.dataset.attention = (w / rows).toFixed(4);
    shaded.push(s);
  });
  all[selected].classList.add("selected");
  shaded.push(all[selected]);
}

async function select(span) {
  const all = characters();
  const i = all.indexOf(span);
  const read = Number(span.dataset.window); // how many characters the model read to choose it
  // The window the model read, and no more: one character a span, and the server takes a text of
  // at most a few thousand characters, where a song and its first line may be longer.
  const before = all.slice(Math.max(0, i - read), i).map((s) => s.textContent).join("");
  selected = i;
  const view = await server.attention_at(before, read, props.voice);
  if (selected !== i || !view) return; // a reply for an earlier click
  if (view.error) { // already HTML, escaped on the server
    tip.innerHTML = `<div class="alt-odds">${view.error}</div>`;
    return;
  }
  attention = view;
  shade();
}

// Hover is for a mouse only: a touch screen also sends mouse events around a tap, and the last of
// them hid the tip at once. A tap (a click) shows the tip until the next tap elsewhere.
song.addEventListener("pointerover", (e) => {
  const span = generated(e.target);
  if (span && e.pointerType === "mouse") showTip(span);
});
song.addEventListener("pointerout", (e) => {
  if (generated(e.target) && e.pointerType === "mouse") tip.hidden = true;
});
song.addEventListener("click", (e) => {
  const span = generated(e.target);
  if (!span) return;
  showTip(span);
  select(span);
});
document.addEventListener("click", (e) => {
  if (!generated(e.target)) tip.hidden = true;
});
layerChoice.addEventListener("change", shade);
headChoice.addEventListener("change", shade);

// What the person saw: characters shown since they asked for the song (Generate, "Write another",
// or Enter in the first line), put into the status line next to the server's own figure when the
// two differ.
let clickedAt = null;
let seedChars = 0; // characters of the first line in the panel
const asksForSong = (e) => e.target.closest && (e.target.closest("#generate, #write-another")
  || (e.type === "keydown" && e.key === "Enter" && !e.shiftKey && e.target.closest("#seed-line")));
for (const kind of ["click", "keydown"]) {
  document.addEventListener(kind, (e) => { if (asksForSong(e)) clickedAt = performance.now(); }, true);
}

function pageRate(statusText) {
  const match = statusText.match(/^\d[^·]* characters\b[^·]* at ([\d,]+) chars\/s/); // the status's first part
  if (!match || clickedAt === null) return null;
  const seconds = (performance.now() - clickedAt) / 1000;
  return seconds >= 0.5 ? { onPage: shownChars / seconds, server: Number(match[1].replace(/,/g, "")) } : null;
}

let statusWatcher = null;
function patchStatus() {
  const box = document.getElementById("song-status");
  if (!box) return;
  const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const rate = pageRate(node.textContent);
    if (!rate || node.textContent.includes(" on this page")) continue; // patched already: the same text again
    const seen = Math.round(rate.onPage).toLocaleString("en");
    const said = Math.abs(rate.onPage - rate.server) <= 0.15 * rate.server
      ? `at ${seen} chars/s`
      : `at ${seen} chars/s on this page (the model wrote ${Math.round(rate.server).toLocaleString("en")} chars/s)`;
    statusWatcher.disconnect(); // this change must not call us again
    node.textContent = node.textContent.replace(/at [\d,]+ chars\/s/, said);
    break;
  }
  statusWatcher.observe(box, { childList: true, subtree: true, characterData: true });
}

// The song goes into the panel a line to a block: a character added to the last line then costs the
// browser the layout of that line alone, not of the whole song.
let line = null; // the block the next character goes into
function newLine() {
  line = document.createElement("div");
  line.className = "line";
  song.append(line);
}
function appendLines(part) {
  for (const node of [...part.childNodes]) {
    const pieces = node.nodeType === Node.TEXT_NODE ? node.data.split(/(?<=\n)/) : [node]; // plain text: split it
    for (const piece of pieces) {
      line.append(piece);
      if ((typeof piece === "string" ? piece : piece.textContent).endsWith("\n")) newLine();
    }
  }
}

// The panel follows the song as it grows, unless the reader has scrolled up to read. Gradio's own
// autoscroll measured the page's layout twice at every update; this lets the browser lay it out once
// a frame, as it does anyway to draw it.
const scroller = (() => {
  for (let box = element; box; box = box.parentElement) {
    if (/auto|scroll/.test(getComputedStyle(box).overflowY)) return box;
  }
  return null;
})();
let following = true;
let scrollQueued = false;
// On a phone the panel sits below the controls, out of sight: a new song brings it into view, so
// that the song is not written where nobody sees it. Where it is in view already (a desktop), nothing moves.
function bringIntoView() {
  const top = element.getBoundingClientRect().top;
  if (top >= 0 && top < 0.6 * window.innerHeight) return;
  (document.getElementById("gpt-label") || element).scrollIntoView({ block: "start", behavior: "smooth" });
}
let followedTo = null; // where follow() last scrolled the panel: a scroll event there is ours, not the reader's
scroller?.addEventListener("scroll", () => {
  // Ours arrives a frame later, when the song may have grown by more than a few lines (a phone wraps them).
  if (scroller.scrollTop === followedTo) return;
  following = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 100;
});
function follow() {
  if (!scroller || !following || scrollQueued) return;
  scrollQueued = true;
  requestAnimationFrame(() => {
    scrollQueued = false;
    // A frame's scroll events come before its animation callbacks: a reader who scrolled up since
    // this was queued has already turned following off.
    if (!following) return;
    scroller.scrollTop = scroller.scrollHeight;
    followedTo = scroller.scrollTop;
  });
}

// Each update's value is the HTML of its new characters after a mark of how many came before them:
// <!--0--> starts a new song, and <!--0 redraw--> draws the song written together anew where the reader
// is (a line chosen or rewritten, Undo). A part that does not follow on from what is shown (gradio
// showing only the last of several updates that came at once) is noted, so that tests can catch it.
let shownChars = 0; // the song's characters in the panel, after its first line
window.songGaps = 0;
watch("value", () => {
  const mark = /^<!--(\d+)( redraw)?-->/.exec(props.value || "");
  if (!mark) return;
  const before = Number(mark[1]);
  const part = document.createElement("template");
  part.innerHTML = props.value.slice(mark[0].length);
  const chars = part.content.textContent.length;
  if (before === 0) { // a new song: start the panel again, and forget the last song's selection
    const scrolled = scroller ? scroller.scrollTop : 0;
    song.replaceChildren();
    newLine();
    appendLines(part.content);
    seedChars = song.querySelectorAll(".seed").length;
    shownChars = chars - seedChars;
    selected = null;
    attention = null;
    shaded = [];
    tip.hidden = true;
    fillMenus();
    if (!mark[2]) {
      following = true;
      bringIntoView();
    } else if (scroller && !following) {
      scroller.scrollTop = scrolled; // the reader stays at the line they were reading
    }
  } else {
    if (before !== shownChars) window.songGaps += 1;
    appendLines(part.content);
    shownChars = before + chars;
  }
  follow();
  bar.hidden = legendBox.hidden = false;
  if (!statusWatcher && document.getElementById("song-status")) {
    statusWatcher = new MutationObserver(patchStatus);
    patchStatus();
  }
});
legendBox.hidden = true;
fillMenus();
watch("voice", fillMenus); // it may come just after the song's first characters
