// The Network view: a recorded `smesh sim` run drawn as its graph, with each node coloured
// by its local intensity (max over signals of intensity × gain) at the chosen tick.
// Playable and scrubbable; frames are fetched from /api/runs/{run}/network.
"use strict";

(() => {
  const { h, clear, fmt } = SM;

  const view = {
    data: null, // {network, frames}
    run: null,
    tick: 0,
    playing: null,
    fetching: false,
    lastFetch: 0,

    reset() {
      this.data = null;
      this.run = null;
      this.stop();
    },

    async fetch(run) {
      if (this.fetching) return;
      this.fetching = true;
      this.lastFetch = performance.now();
      try {
        const response = await fetch(`/api/runs/${encodeURIComponent(run)}/network`);
        const body = await response.json();
        const atEnd = !this.data || this.tick >= this.data.frames.length - 1;
        this.data = response.ok && body.network ? body : { error: body.error || body.note };
        this.run = run;
        if (response.ok && atEnd && !this.playing) this.tick = Math.max(0, body.frames.length - 1);
      } finally {
        this.fetching = false;
        SM.schedule();
      }
    },

    render(section, S) {
      if (!section.firstChild) {
        section.append(
          h("div", { class: "toolbar" },
            h("button", { dataset: { part: "play" }, text: "▶ play", onclick: () => this.toggle() }),
            h("input", { type: "range", min: 0, max: 0, value: 0, dataset: { part: "slider" },
              oninput: (e) => { this.stop(); this.tick = Number(e.target.value); this.draw(section); } }),
            h("span", { dataset: { part: "label" } })),
          h("canvas", { class: "network", dataset: { part: "canvas" } }),
          h("p", { class: "note", dataset: { part: "note" } }));
      }
      const stale = this.run !== S.run || (this.data && !this.data.error && this.data.frames.length < S.frames);
      if (stale && performance.now() - this.lastFetch > 400) this.fetch(S.run);
      this.draw(section);
    },

    toggle() {
      if (this.playing) return this.stop();
      if (!this.data || !this.data.frames) return;
      if (this.tick >= this.data.frames.length - 1) this.tick = 0;
      this.playing = setInterval(() => {
        if (!this.data || this.tick >= this.data.frames.length - 1) return this.stop();
        this.tick += 1;
        this.draw(document.getElementById("view-network"));
      }, 120);
      SM.schedule();
    },

    stop() {
      if (this.playing) clearInterval(this.playing);
      this.playing = null;
      SM.schedule();
    },

    // local intensity per node after `tick` frames
    levels(tick) {
      const { network, frames } = this.data;
      const gains = new Map(); // signal index -> Float32Array of gains (-1: not reached)
      const eff = new Map();
      const n = network.ids.length;
      for (let k = 0; k <= tick && k < frames.length; k++) {
        for (const s of frames[k].signals) {
          let g = gains.get(s.i);
          if (!g) gains.set(s.i, (g = new Float32Array(n).fill(-1)));
          for (const [node, , gain] of s.new) g[node] = gain;
          eff.set(s.i, s.e);
        }
      }
      const level = new Float32Array(n);
      for (const [i, g] of gains) {
        const e = eff.get(i) || 0;
        for (let node = 0; node < n; node++) if (g[node] >= 0) level[node] = Math.max(level[node], e * g[node]);
      }
      return level;
    },

    draw(section) {
      const part = (id) => section.querySelector(`[data-part="${id}"]`);
      const note = part("note");
      if (!this.data) return (note.textContent = "loading…");
      if (this.data.error) return (note.textContent = this.data.error);
      const { network, frames } = this.data;
      const slider = part("slider");
      slider.max = Math.max(0, frames.length - 1);
      slider.value = this.tick;
      part("play").textContent = this.playing ? "❚❚ pause" : "▶ play";
      const frame = frames[this.tick];
      part("label").textContent = frame
        ? `tick ${frame.tick} of ${frames[frames.length - 1].tick} · t=${fmt(frame.t, 2)} · coverage ${fmt(100 * frame.coverage, 1)} %`
        : "no frames yet";
      note.textContent = `${network.ids.length} nodes, ${network.edges.length} edges (${network.topology}); colour: local intensity`;
      const canvas = part("canvas");
      const ratio = window.devicePixelRatio || 1;
      const w = canvas.clientWidth || 600;
      const hgt = canvas.clientHeight || 500;
      canvas.width = w * ratio;
      canvas.height = hgt * ratio;
      const g = canvas.getContext("2d");
      g.scale(ratio, ratio);
      g.clearRect(0, 0, w, hgt);
      const P = network.layout.map(([x, y]) => [20 + x * (w - 40), 20 + y * (hgt - 40)]);
      g.strokeStyle = "rgba(120,120,120,0.25)";
      g.beginPath();
      for (const [a, b] of network.edges) {
        g.moveTo(P[a][0], P[a][1]);
        g.lineTo(P[b][0], P[b][1]);
      }
      g.stroke();
      const level = frames.length ? this.levels(this.tick) : new Float32Array(P.length);
      const r = P.length > 500 ? 2 : 5;
      P.forEach(([x, y], i) => {
        const v = level[i];
        g.fillStyle = v > 0 ? `hsl(${30 - 30 * v}, 90%, ${70 - 35 * v}%)` : "#cfd6df";
        g.beginPath();
        g.arc(x, y, r, 0, 2 * Math.PI);
        g.fill();
      });
      canvas.dataset.reached = String(level.filter((v) => v > 0).length);
    },
  };

  SM.views.network = view;
})();
