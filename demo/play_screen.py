"""The Play tab's screen: the gr.HTML that draws the world on a canvas and holds the keys.

The page's side of Play (see play_tab.py): a canvas, an on-screen pad of the world's controls, undo / reset
and a temperature slider; its script keeps the held controls, calls the server's step one call at a time,
paces the frames it gets back and shows the readout: the latest step's time from key press (or, while a key is
held, from asking for the step) to its first frame painted, and the frames painted per second while playing
('–' when idle). Under it, the keys of the chosen world and how many frames one key press plays.
"""
from __future__ import annotations

SCREEN_SIZE = 320  # pixels of the on-page screen (frames are scaled up, pixelated)

SCREEN_HTML = """
<div class="play">
  <canvas class="play-screen" width="SIZE" height="SIZE" tabindex="0" aria-label="the world"></canvas>
  <div class="play-status">Pick a start.</div>
  <div class="play-readout">latest step – ms · – frames/s</div>
  <div class="play-keys">{{keys_text}}</div>
  <div class="play-pad">
    {{#each controls}}<button type="button" data-control="{{name}}" title="{{meaning}}">{{symbol}}</button>{{/each}}
  </div>
  <div class="play-row">
    <button type="button" data-op="undo">Undo</button>
    <button type="button" data-op="reset">Reset</button>
    <label>Temperature <input class="play-temperature" type="range" min="0.1" max="2" step="0.05" value="1">
      <span class="play-temperature-value">1.00</span></label>
  </div>
</div>
""".replace("SIZE", str(SCREEN_SIZE))

SCREEN_CSS = """
.play { display: flex; flex-direction: column; align-items: center; gap: 6px; }
.play-screen { width: SIZEpx; height: SIZEpx; image-rendering: pixelated; background: #111; border-radius: 6px; }
.play-status, .play-readout, .play-keys { font-size: 0.9em; min-height: 1.2em; text-align: center; }
.play-keys { max-width: SIZEpx; opacity: 0.8; }
.play-readout { font-variant-numeric: tabular-nums; opacity: 0.8; }
.play-pad { display: grid; grid-template-columns: repeat(3, 56px); grid-auto-rows: 44px; gap: 4px;
            justify-content: center; touch-action: none; user-select: none; }
.play-pad button, .play-row button { border: 1px solid #888; border-radius: 6px; font-size: 1.2em;
                                     background: rgba(127, 127, 127, 0.15); touch-action: none; }
.play-pad button.held { background: rgba(99, 102, 241, 0.55); }
.play-pad button[data-control="up"] { grid-column: 2; grid-row: 1; }
.play-pad button[data-control="left"] { grid-column: 1; grid-row: 2; }
.play-pad button[data-control="down"] { grid-column: 2; grid-row: 2; }
.play-pad button[data-control="right"] { grid-column: 3; grid-row: 2; }
.play-row { display: flex; gap: 8px; align-items: center; }
.play-row button { font-size: 1em; padding: 4px 12px; }
""".replace("SIZE", str(SCREEN_SIZE))

# The page's side: key and button state, the one-call-at-a-time loop, frame pacing and the readout.
# window.videogptPlay keeps figures a test or a benchmark (or a curious user) can read: latencies of presses
# made while idle and while a step ran (key down -> first new frame painted), of every step (asked -> first
# frame painted), frame paint times, server milliseconds per step.
SCREEN_JS = r"""
const canvas = element.querySelector('.play-screen');
const context = canvas.getContext('2d');
context.imageSmoothingEnabled = false;
const stats = window.videogptPlay = {latencies: [], busyLatencies: [], stepLatencies: [], frameTimes: [],
                                     serverMs: [], steps: 0, errors: [], episode: null, readout: ''};
const RATE_WINDOW_MS = 2000, IDLE_MS = 1000;  // frames/s over the last 2 s; idle after 1 s without a frame
let episode = null, fps = 10, busy = false, pressAt = null, pressWhileBusy = false;
let activeSince = null, startedAt = 0, lastLatency = null, lastServerMs = null;
const held = new Set(), tapped = new Set(), ops = [], queue = [];
let drawing = false;

const status = text => { element.querySelector('.play-status').textContent = text; };
const visible = () => element.offsetParent !== null;
function controlOf(key) {
  const keymap = props.keymap || {};
  return keymap[key] || keymap[key.length === 1 ? key.toLowerCase() : key];
}
function framesPerSecond(now) {  // frames painted per second since playing began (at most the last 2 s)
  const times = stats.frameTimes, last = times[times.length - 1];
  const idle = last === undefined || last < startedAt || (!busy && !queue.length && now - last > IDLE_MS);
  if (idle) { activeSince = null; return null; }
  const from = Math.max(now - RATE_WINDOW_MS, startedAt, activeSince === null ? -Infinity : activeSince);
  const count = times.filter(t => t > from).length;
  return count && now > from ? count * 1000 / (now - from) : null;
}
function readout() {
  const rate = framesPerSecond(performance.now());
  const latency = lastLatency === null ? '– ms'
    : `${Math.round(lastLatency.ms)} ms ${lastLatency.pressed ? 'key → frame' : 'step → frame'}`;
  const server = lastServerMs === null ? '' : ` (server ${Math.round(lastServerMs)} ms)`;
  stats.readout = `latest step ${latency}${server} · ${rate === null ? '–' : rate.toFixed(1)} frames/s`;
  element.querySelector('.play-readout').textContent = stats.readout;
}
function painted() {  // when the frame just drawn is on screen (after the next paint; 100 ms in a hidden tab)
  return new Promise(resolve => {
    let done = false;
    const finish = () => { if (!done) { done = true; resolve(performance.now()); } };
    requestAnimationFrame(() => setTimeout(finish, 0));
    setTimeout(finish, 100);
  });
}
async function drain() {
  if (drawing) return;
  drawing = true;
  while (queue.length) {
    const item = queue.shift();
    if (item.episode !== episode) continue;
    const image = new Image();
    image.src = item.uri;
    try { await image.decode(); } catch (error) { continue; }
    if (item.episode !== episode) continue;
    context.drawImage(image, 0, 0, canvas.width, canvas.height);
    const drawn = performance.now();
    const shown = await painted();
    if (item.counts) stats.frameTimes.push(shown);
    if (stats.frameTimes.length > 2000) stats.frameTimes.splice(0, 1000);
    if (item.asked) {
      const ms = shown - item.asked.at;
      stats.stepLatencies.push(ms);
      if (item.asked.pressed) (item.asked.waited ? stats.busyLatencies : stats.latencies).push(ms);
      lastLatency = {ms, pressed: item.asked.pressed};
    }
    if (item.counts) readout();
    // Frames play at the world's rate; a backlog plays faster so the screen never lags the world.
    const hold = 1000 / fps / (queue.length > 8 ? 3 : 1);
    const wait = drawn + hold - performance.now();
    if (queue.length && wait > 0) await new Promise(resolve => setTimeout(resolve, wait));
  }
  drawing = false;
}
function show(payload, counts, asked) {
  if (!payload) return;
  if (payload.episode !== episode) return;  // a reply about an episode this page has replaced
  if (payload.error) { status(payload.error); return; }
  fps = payload.fps || fps;
  (payload.frames || []).forEach((uri, index) => queue.push({uri, episode, counts,
                                                            asked: index === 0 ? asked : null}));
  if (payload.message) status(payload.message);
  else status(`frame ${payload.length} · step ${payload.steps}`);
  drain();
}
function start(payload) {  // a new episode from the server (start or model change)
  episode = payload ? payload.episode : null;
  stats.episode = episode;
  queue.length = 0; tapped.clear(); pressAt = null; lastLatency = null; lastServerMs = null; activeSince = null;
  startedAt = performance.now();
  readout();
  if (!episode) { context.clearRect(0, 0, canvas.width, canvas.height); if (payload) status(payload.message || 'Pick a start.'); return; }
  canvas.focus({preventScroll: true});  // keys go to the world, not to the control clicked to start
  show(payload, false, null);
}
async function call(name, data) {
  try { return await server[name](data); }
  catch (error) { stats.errors.push(String(error)); status(`The server did not answer (${error}); try again.`); return null; }
}
async function pump() {
  if (busy || !episode) return;
  busy = stats.busy = true;
  try {
    while (ops.length) {
      const op = ops.shift();
      queue.length = 0;
      show(await call('play_' + op, {episode}), false, null);
    }
    const names = [...new Set([...held, ...tapped])];
    if (!names.length) return;
    tapped.clear();
    const asked = pressAt === null ? {at: performance.now(), pressed: false, waited: false}
                                   : {at: pressAt, pressed: true, waited: pressWhileBusy};
    pressAt = null;
    const temperature = Number(element.querySelector('.play-temperature').value);
    const reply = await call('play_step', {episode, keys: names, temperature});
    if (reply && !reply.error && reply.episode === episode) {
      stats.steps += 1; stats.serverMs.push(reply.ms); lastServerMs = reply.ms;
    }
    show(reply, true, asked);
  } finally {
    busy = stats.busy = false;
  }
  if (held.size || tapped.size || ops.length) setTimeout(pump, 0);
}
function press(name) {
  if (!episode) { status('Pick a start first: click an example frame, upload an image or load a test episode.'); return; }
  if (pressAt === null) { pressAt = performance.now(); pressWhileBusy = busy; }
  if (activeSince === null) activeSince = pressAt;
  held.add(name); tapped.add(name);
  element.querySelectorAll(`[data-control="${name}"]`).forEach(b => b.classList.add('held'));
  pump();
}
function release(name) {
  held.delete(name);
  element.querySelectorAll(`[data-control="${name}"]`).forEach(b => b.classList.remove('held'));
}
function releaseAll() { [...held].forEach(release); }
function typing(target) {
  if (!target || !target.tagName) return false;
  const tag = target.tagName.toLowerCase();
  return tag === 'textarea' || target.isContentEditable || (tag === 'input' && target.type !== 'range');
}
function onKeyDown(event) {
  if (!visible() || typing(event.target) || event.ctrlKey || event.metaKey || event.altKey) return;
  const name = controlOf(event.key);
  // Arrows and Space would scroll the page, and Space would click the focused button (an example: a restart),
  // also in a world without an extra action.
  if (name || (event.key === ' ' && episode)) event.preventDefault();
  if (name && !event.repeat) press(name);
}
function onKeyUp(event) { const name = controlOf(event.key); if (name) release(name); }
if (window.videogptPlayDetach) window.videogptPlayDetach();  // a re-mounted screen replaces the old listeners
document.addEventListener('keydown', onKeyDown);
document.addEventListener('keyup', onKeyUp);
window.addEventListener('blur', releaseAll);
const ticker = setInterval(() => { if (visible() && episode) readout(); }, 250);  // frames/s falls to '–' when idle
window.videogptPlayDetach = () => {
  clearInterval(ticker);
  document.removeEventListener('keydown', onKeyDown);
  document.removeEventListener('keyup', onKeyUp);
  window.removeEventListener('blur', releaseAll);
};
element.addEventListener('pointerdown', event => {
  const button = event.target.closest('[data-control]');
  if (button) {
    event.preventDefault();
    try { button.setPointerCapture(event.pointerId); } catch (error) { /* synthetic events have no pointer */ }
    press(button.dataset.control);
    return;
  }
  const op = event.target.closest('[data-op]');
  if (op && episode) { ops.push(op.dataset.op); pump(); }
});
for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) {
  element.addEventListener(type, event => {
    const button = event.target.closest && event.target.closest('[data-control]');
    if (button) release(button.dataset.control);
  });
}
element.addEventListener('input', event => {
  if (event.target.classList.contains('play-temperature'))
    element.querySelector('.play-temperature-value').textContent = Number(event.target.value).toFixed(2);
});
watch('value', () => start(props.value));
if (props.value && props.value.episode) start(props.value);
"""
