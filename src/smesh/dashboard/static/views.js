// The dashboard's views: Field, Tasks, Trust, Trace, Cost and Events (network.js draws
// the Network). Each view is render(section, state); all run text is set as text.
"use strict";

(() => {
  const { h, clear, fmt, short, kindColor, runNow, relTime } = SM;
  const ROWS = 200;

  // -- a small line chart on a canvas ------------------------------------------------------

  function lineChart(canvas, series, { yMax = null, label = "" } = {}) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || 600;
    const height = canvas.clientHeight || 200;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const g = canvas.getContext("2d");
    g.scale(ratio, ratio);
    g.clearRect(0, 0, width, height);
    const points = series.flatMap((s) => s.points);
    g.fillStyle = "#777";
    g.font = "11px sans-serif";
    if (!points.length) {
      g.fillText("no data yet", 10, 20);
      return;
    }
    const x0 = Math.min(...points.map((p) => p[0]));
    const x1 = Math.max(...points.map((p) => p[0]), x0 + 1e-9);
    const top = yMax ?? Math.max(...points.map((p) => p[1]), 1e-9);
    const pad = { l: 40, r: 8, t: 8, b: 18 };
    const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
    const Y = (y) => height - pad.b - (y / top) * (height - pad.t - pad.b);
    g.strokeStyle = "#ddd";
    g.beginPath();
    g.moveTo(pad.l, pad.t);
    g.lineTo(pad.l, height - pad.b);
    g.lineTo(width - pad.r, height - pad.b);
    g.stroke();
    g.fillText(fmt(top), 2, pad.t + 8);
    g.fillText("0", 2, height - pad.b);
    g.fillText(`${fmt(x1 - x0)} s ${label}`, width - 120, height - 4);
    for (const s of series) {
      g.strokeStyle = s.color;
      g.lineWidth = 1.5;
      g.beginPath();
      s.points.forEach(([x, y], i) => (i ? g.lineTo(X(x), Y(y)) : g.moveTo(X(x), Y(y))));
      g.stroke();
    }
  }

  function table(headers, rows) {
    return h(
      "table",
      {},
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { text: x })))),
      h("tbody", {}, rows),
    );
  }

  function legend(names) {
    return h(
      "div",
      { class: "legend" },
      names.map((n) => h("span", {}, h("i", { style: `background:${kindColor(n)}` }), n)),
    );
  }

  // keep a view's static skeleton between renders (canvas sizes, inputs keep focus)
  function skeleton(section, build) {
    if (!section.firstChild) build(section);
    return (id) => section.querySelector(`[data-part="${id}"]`);
  }

  // -- Field -------------------------------------------------------------------------------

  SM.views.field = {
    render(section, S) {
      const part = skeleton(section, (s) =>
        s.append(
          h("h2", { text: "Live signals by kind (summed effective intensity over time)" }),
          h("div", { dataset: { part: "legend" } }),
          h("canvas", { class: "chart", dataset: { part: "chart" } }),
          h("div", { class: "cols" },
            h("div", {}, h("h3", { text: "Kinds" }), h("div", { dataset: { part: "kinds" } })),
            h("div", {}, h("h3", { text: "Strongest signals now" }), h("div", { dataset: { part: "top" } }))),
          h("h3", { text: "Latest field events" }),
          h("div", { dataset: { part: "ticker" } }),
        ),
      );
      const kinds = Object.keys(S.stats.counts || {});
      clear(part("legend")).append(legend(kinds));
      const series = kinds.map((k) => ({
        color: kindColor(k),
        points: S.samples.filter((x) => x.by_kind[k]).map((x) => [x.t, x.by_kind[k].sum]),
      }));
      lineChart(part("chart"), series);
      const rows = kinds.map((k) => {
        const c = S.stats.counts[k];
        return h("tr", { dataset: { kind: k } },
          h("td", {}, h("i", { class: "swatch", style: `background:${kindColor(k)}` }), k),
          [S.stats.live[k] || 0, c.emit, c.reinforce, c.renew, c.withdraw, c.expire].map((v) =>
            h("td", { class: "num", text: fmt(v) })));
      });
      clear(part("kinds")).append(
        table(["kind", "live", "emitted", "reinforced", "renewed", "withdrawn", "expired"], rows));
      const top = (S.top || []).map((s) =>
        h("tr", {},
          h("td", {}, h("i", { class: "swatch", style: `background:${kindColor(s.kind)}` }), s.kind),
          h("td", {}, h("div", { class: "bar" },
            h("div", { style: `width:${Math.round(100 * s.intensity)}%;background:${kindColor(s.kind)}` })),
            fmt(s.intensity, 3)),
          h("td", { class: "num", text: s.reinforcers }),
          h("td", { text: s.origin }),
          h("td", { class: "payload", text: short(s.payload, 80) })));
      clear(part("top")).append(table(["kind", "intensity", "reinf.", "origin", "payload"], top));
      const ticker = S.events.filter((e) => e.type === "signal").slice(-40).reverse();
      clear(part("ticker")).append(
        table(["t", "op", "kind", "who", "intensity", "payload"], ticker.map((e) =>
          h("tr", { class: "op-" + e.op, dataset: { kind: e.kind, op: e.op } },
            h("td", { text: relTime(e.t) }),
            h("td", { text: e.op }),
            h("td", { text: e.kind }),
            h("td", { text: e.by || e.origin }),
            h("td", { class: "num", text: fmt(e.intensity, 3) }),
            h("td", { class: "payload", text: short(e.payload, 100) })))));
    },
  };

  // -- Tasks -------------------------------------------------------------------------------

  function votes(task) {
    const by = {};
    for (const v of task.votes) {
      if (v.attempt !== task.attempt && task.decisions.every((d) => d.attempt !== v.attempt)) continue;
      const key = v.verdict;
      by[key] = (by[key] || []).concat(v.voters.map((x) => `${x.agent} (${fmt(x.weight, 2)})`));
    }
    return Object.entries(by).map(([verdict, voters]) =>
      h("div", { class: "vote " + verdict, text: `${verdict}: ${voters.join(", ")}` }));
  }

  function lease(task) {
    const now = runNow();
    return task.claims.map((c) => {
      const left = c.expires_at - now;
      const text = c.state === "held"
        ? `${c.agent} holds (${left > 0 ? fmt(left, 1) + " s left" : "lapsing"})`
        : `${c.agent} bids ${fmt(c.bid, 2)}`;
      return h("div", { text });
    });
  }

  function extras(task) {
    const out = [];
    if (task.depends_on) out.push(h("div", { text: "depends on " + short(task.depends_on, 80) }));
    for (const a of task.approvals) out.push(h("div", { class: "vote " + a.verdict, text: `${a.verdict}d by ${a.by}` }));
    for (const [kind, rows] of Object.entries(task.signals || {})) {
      if (kind === "approval") continue;
      out.push(h("div", { class: "extra", text: `${kind} ×${rows.length}: ${short(rows[rows.length - 1].payload, 60)}` }));
    }
    return out;
  }

  function buttons(task) {
    const final = ["accepted", "failed", "cancelled"].includes(task.status);
    return ["approve", "reject", "cancel"].map((verb) =>
      h("button", {
        class: "act " + verb,
        text: verb,
        disabled: verb === "cancel" && final,
        dataset: { verb, task: task.id },
        onclick: () => SM.control(task.id, verb, task.attempt),
      }));
  }

  SM.views.tasks = {
    render(section, S) {
      const part = skeleton(section, (s) =>
        s.append(
          h("div", { class: "toolbar" },
            h("div", { dataset: { part: "counts" } }),
            h("input", { type: "search", placeholder: "filter tasks", dataset: { part: "filter" }, oninput: SM.schedule }),
            h("select", { dataset: { part: "status" }, onchange: SM.schedule },
              ["all", "open", "bidding", "working", "verifying", "accepted", "failed", "cancelled"].map((x) =>
                h("option", { value: x, text: x })))),
          h("div", { dataset: { part: "table" } }),
        ),
      );
      clear(part("counts")).append(...Object.entries(S.stats.tasks || {}).map(([k, v]) =>
        h("span", { class: "pill st-" + k, text: `${k} ${fmt(v)}` })));
      const needle = part("filter").value.toLowerCase();
      const status = part("status").value;
      const tasks = [...S.tasks.values()]
        .filter((t) => status === "all" || t.status === status)
        .filter((t) => !needle || `${t.id} ${t.skill} ${t.description}`.toLowerCase().includes(needle))
        .sort((a, b) => b.updated - a.updated)
        .slice(0, ROWS);
      const rows = tasks.map((t) =>
        h("tr", { dataset: { task: t.id, status: t.status } },
          h("td", {}, h("a", { href: `#trace/${encodeURIComponent(t.id)}`, text: t.id })),
          h("td", {}, h("span", { class: "pill st-" + t.status, text: t.status })),
          h("td", { text: t.skill }),
          h("td", { class: "desc", text: short(t.description || "", 80) }),
          h("td", { class: "num", text: `${t.attempt}/${t.max_attempts ?? "?"}` }),
          h("td", { class: "num", text: t.offers }),
          h("td", {}, lease(t)),
          h("td", {}, votes(t)),
          h("td", { text: t.decisions.map((d) => `#${d.attempt} ${d.verdict} (${d.basis})`).join("; ") }),
          h("td", {}, extras(t)),
          h("td", { class: "nowrap" }, buttons(t))));
      clear(part("table")).append(
        table(["task", "status", "skill", "description", "attempt", "offers", "claims / lease",
          "votes (trust weight)", "decisions", "deps, approvals, other", ""], rows),
        S.tasks.size > ROWS ? h("p", { class: "note", text: `showing ${ROWS} of ${S.tasks.size}; filter to narrow` }) : "");
    },
  };

  // -- Trust -------------------------------------------------------------------------------

  SM.views.trust = {
    render(section, S) {
      const part = skeleton(section, (s) =>
        s.append(
          h("h2", { text: "Trust per agent over time" }),
          h("div", { dataset: { part: "legend" } }),
          h("canvas", { class: "chart", dataset: { part: "chart" } }),
          h("div", { class: "cols" },
            h("div", {}, h("h3", { text: "Who trusts whom" }), h("div", { dataset: { part: "edges" } })),
            h("div", {}, h("h3", { text: "Verdicts: verifier (row) on worker (column), ✓ approve / ✗ reject" }),
              h("div", { dataset: { part: "matrix" } }))),
        ),
      );
      const peers = Object.keys(S.trust.series).slice(0, 30);
      clear(part("legend")).append(legend(peers));
      lineChart(part("chart"), peers.map((p) => ({ color: kindColor(p), points: S.trust.series[p] })), { yMax: 1 });
      const edges = Object.entries(S.trust.edges).flatMap(([from, to]) =>
        Object.entries(to).map(([peer, v]) => h("tr", {}, h("td", { text: from }), h("td", { text: peer }),
          h("td", { class: "num", text: fmt(v, 3) }))));
      clear(part("edges")).append(table(["truster", "peer", "trust"], edges.slice(0, 100)));
      const voters = Object.keys(S.trust.verdicts).slice(0, 20);
      const workers = [...new Set(voters.flatMap((v) => Object.keys(S.trust.verdicts[v])))].slice(0, 20);
      const rows = voters.map((v) => h("tr", {}, h("th", { text: v }), workers.map((w) => {
        const cell = S.trust.verdicts[v][w];
        return h("td", { class: "num", text: cell ? `✓${cell[0]} ✗${cell[1]}` : "" });
      })));
      clear(part("matrix")).append(table(["", ...workers], rows));
    },
  };

  // -- Trace -------------------------------------------------------------------------------

  SM.views.trace = {
    loaded: null,
    render(section, S) {
      const part = skeleton(section, (s) =>
        s.append(
          h("div", { class: "toolbar" }, "task ",
            h("input", { list: "task-ids", dataset: { part: "pick" }, placeholder: "task id",
              onchange: (e) => (location.hash = "trace/" + encodeURIComponent(e.target.value)) }),
            h("datalist", { id: "task-ids", dataset: { part: "ids" } })),
          h("div", { dataset: { part: "story" } }),
        ),
      );
      const ids = [...S.tasks.keys()].slice(-300);
      if (part("ids").childElementCount !== ids.length) {
        clear(part("ids")).append(...ids.map((id) => h("option", { value: id })));
      }
      const wanted = decodeURIComponent(location.hash.split("/")[1] || "");
      if (!wanted || this.loaded === `${S.run}/${wanted}`) return;
      this.loaded = `${S.run}/${wanted}`;
      part("pick").value = wanted;
      this.load(part("story"), S.run, wanted);
    },
    async load(node, run, taskId) {
      const response = await fetch(`/api/runs/${encodeURIComponent(run)}/tasks/${encodeURIComponent(taskId)}`);
      const body = await response.json();
      clear(node);
      if (!response.ok) return node.append(h("p", { class: "note", text: body.error }));
      const t = body.task;
      if (t) node.append(h("p", { text: `${t.id}: ${t.status}, attempt ${t.attempt}, skill ${t.skill} — ${short(t.description || "", 200)}` }));
      const start = body.story.length ? body.story[0].t : 0;
      node.append(table(["t+s", "agent", "action", "why / what"], body.story.map((r) =>
        h("tr", { dataset: { action: r.action } }, h("td", { class: "num", text: fmt(r.t - start, 3) }),
          h("td", { text: r.agent }), h("td", { text: r.action }), h("td", { text: r.text })))));
    },
  };

  // -- Cost --------------------------------------------------------------------------------

  function usageTable(title, rows) {
    const entries = Object.entries(rows || {});
    return h("div", {}, h("h3", { text: title }), table(["", "calls", "errors", "tokens in", "tokens out", "cost $"],
      entries.map(([k, u]) => h("tr", {}, h("td", { text: k }),
        [u.calls, u.errors, u.input_tokens, u.output_tokens].map((x) => h("td", { class: "num", text: fmt(x) })),
        h("td", { class: "num", text: fmt(u.cost_usd, 4) })))));
  }

  SM.views.cost = {
    render(section, S) {
      clear(section);
      const c = S.cost || {};
      const r = S.report || {};
      section.append(h("p", {
        text: `run totals: ${fmt(r.llm_calls)} LLM calls, ${fmt(r.tokens)} tokens, $${fmt(r.cost, 4)}` +
          (S.finished ? "" : " (totals arrive when the run ends; per-call rows as they happen)"),
      }));
      const acc = c.accounting || {};
      section.append(h("div", { class: "cols" },
        usageTable("per agent (live)", c.by_agent), usageTable("per backend (live)", c.by_backend)));
      section.append(h("div", { class: "cols" },
        usageTable("per agent (run report)", acc.by_agent), usageTable("per backend (run report)", acc.by_backend)));
      section.append(usageTable("per task", c.by_task));
      section.append(h("h3", { text: "Pressure" }), table(["backend", "holds", "hold s", "429s"],
        Object.keys({ ...c.holds, ...c.rate_limited }).map((b) => h("tr", {}, h("td", { text: b }),
          h("td", { class: "num", text: fmt((c.holds || {})[b] || 0) }),
          h("td", { class: "num", text: fmt((c.hold_s || {})[b] || 0) }),
          h("td", { class: "num", text: fmt((c.rate_limited || {})[b] || 0) })))));
      section.append(table(["t", "backend", "by", "op", "payload"], (c.pressure || []).slice(-30).reverse().map((p) =>
        h("tr", {}, h("td", { text: relTime(p.t) }), h("td", { text: p.backend }), h("td", { text: p.by }),
          h("td", { text: p.op }), h("td", { class: "payload", text: short(p.payload, 80) })))));
    },
  };

  // -- Events (everything, generically) ----------------------------------------------------

  SM.views.events = {
    render(section, S) {
      const part = skeleton(section, (s) =>
        s.append(h("div", { class: "toolbar" }, h("input", { type: "search", placeholder: "filter type / kind / agent",
          dataset: { part: "filter" }, oninput: SM.schedule })), h("div", { dataset: { part: "log" } })));
      const needle = part("filter").value.toLowerCase();
      const rows = S.events.slice().reverse()
        .filter((e) => !needle || `${e.type} ${e.kind} ${e.agent || ""} ${e.origin || ""}`.toLowerCase().includes(needle))
        .slice(0, ROWS)
        .map((e) => h("tr", { dataset: { type: e.type, kind: e.kind } },
          h("td", { text: relTime(e.t) }), h("td", { text: e.type }), h("td", { text: e.kind }),
          h("td", { text: e.op || "" }), h("td", { text: e.agent || e.by || e.origin || "" }),
          h("td", { text: e.task_id || "" }), h("td", { class: "payload", text: short(e.payload, 160) })));
      clear(part("log")).append(table(["t", "type", "kind", "op", "who", "task", "payload"], rows));
    },
  };
})();
