/* run-testsuite HTML report: rows, filters, details and the timeline.
 *
 * Test data only ever reaches the page through textContent and attribute
 * setters, never innerHTML. Rows are built in chunks so that a large run
 * paints at once; details are built the first time a row is opened; filters
 * toggle `hidden` on rows built once; the timeline is a single SVG.
 */
(function () {
  "use strict";

  // "1 flip", "3 flips".
  function counted(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var results = data.results;
  var STATUSES = ["PASS", "FAIL", "XFAIL", "XPASS", "SKIP", "ERROR"];
  var severity = {};
  data.severity.forEach(function (s, i) { severity[s] = i; });
  var byName = new Map();
  var rowsEl = document.getElementById("rows");
  var shownEl = document.getElementById("shown");
  var emptyEl = document.getElementById("empty");
  var searchEl = document.getElementById("search");
  var CHUNK = 1500;

  /* How long a result held the timeline: its wall time where fragments ran
     side by side (duration is then their sum), else its duration. */
  function took(r) { return r.wall !== null && r.wall !== undefined ? r.wall : r.duration; }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function known(status) { return STATUSES.indexOf(status) >= 0 ? status : "ERROR"; }

  /* Durations as in the header (html.py's `seconds`). */
  function seconds(v) {
    if (v < 0.001) return (v * 1000).toFixed(2) + " ms";
    if (v < 1) return Math.round(v * 1000) + " ms";
    if (v < 60) return v.toFixed(2) + " s";
    var m = Math.floor(Math.round(v) / 60), s = Math.round(v) % 60;
    return m >= 60 ? Math.floor(m / 60) + "h " + String(m % 60).padStart(2, "0") + "m"
                   : m + "m " + String(s).padStart(2, "0") + "s";
  }

  results.forEach(function (r, i) {
    r.i = i;
    r.status = known(r.status);
    r.el = null;
    r.visible = true;
    r.marks = [];
    if (r.kind !== "testcase") r.marks.push(r.kind);
    if (r.cached) r.marks.push("cached");
    if (r.attempts > 1) r.marks.push(r.attempts + " attempts");
    if (r.quarantined) r.marks.push("quarantined");
    if (r.flips) r.marks.push("flaky");
    var subs = r.subresults || [];
    if (subs.length) {
      var bad = (r.subcounts.FAIL || 0) + (r.subcounts.ERROR || 0);
      r.marks.push(subs.length + (subs.length === 1 ? " sub-result" : " sub-results") + (bad ? ", " + bad + " failed" : ""));
    }
    /* A sub-result's name finds its testcase (and opens the list on it). */
    r.hay = [r.name, r.tags.join(" "), r.marks.join(" "), r.reason || "", r.message,
             subs.map(function (x) { return x[0]; }).join("\n")].join("\n").toLowerCase();
    byName.set(r.name, r);
  });

  /* ---- filtering --------------------------------------------------------- */
  var enabled = new Set(STATUSES);
  var terms = [];
  var order = results.slice();
  var built = 0;

  function matches(r) {
    if (!enabled.has(r.status)) return false;
    for (var k = 0; k < terms.length; k++) if (r.hay.indexOf(terms[k]) < 0) return false;
    return true;
  }

  function applyFilter() {
    var count = 0;
    for (var k = 0; k < results.length; k++) {
      var r = results[k], want = matches(r);
      if (want) count++;
      if (want !== r.visible) {
        r.visible = want;
        if (r.el) r.el.hidden = !want;
      }
      var subs = r.detail && r.detail.querySelector(".subresults");
      if (subs) narrowSubresults(subs);
    }
    shownEl.textContent = count === results.length ? "showing all " + count
                                                    : "showing " + count + " of " + results.length;
    emptyEl.hidden = count > 0;
  }

  var pending = false;
  function scheduleFilter() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () { pending = false; readControls(); applyFilter(); });
  }

  function readControls() {
    enabled = new Set();
    document.querySelectorAll("[data-status-filter]").forEach(function (box) {
      if (box.checked) enabled.add(box.getAttribute("data-status-filter"));
    });
    terms = searchEl.value.toLowerCase().split(/\s+/).filter(Boolean);
  }

  document.querySelectorAll("[data-status-filter]").forEach(function (box) {
    box.addEventListener("change", scheduleFilter);
  });
  searchEl.addEventListener("input", scheduleFilter);
  function setStatuses(predicate) {
    document.querySelectorAll("[data-status-filter]").forEach(function (box) {
      box.checked = predicate(box.getAttribute("data-status-filter"));
    });
    scheduleFilter();
  }
  document.getElementById("only-failures").addEventListener("click", function () {
    setStatuses(function (s) { return s === "FAIL" || s === "ERROR" || s === "XPASS"; });
  });
  document.getElementById("show-all").addEventListener("click", function () {
    searchEl.value = "";
    setStatuses(function () { return true; });
  });

  /* ---- rows -------------------------------------------------------------- */
  function buildRow(r) {
    var res = el("div", "res s-" + r.status);
    res.setAttribute("data-status", r.status);
    res.setAttribute("data-i", r.i);
    var line = el("div", "line");
    line.tabIndex = 0;
    line.setAttribute("role", "button");
    line.setAttribute("aria-expanded", "false");
    line.appendChild(el("span", "badge small s-" + r.status, r.status));
    var name = el("span", "name", r.name);
    r.tags.forEach(function (t) { name.appendChild(el("span", "tag", t)); });
    r.marks.forEach(function (m) { name.appendChild(el("span", "tag mark", m)); });
    line.appendChild(name);
    var msg = el("span", "msg");
    if (r.reason) msg.appendChild(el("span", "reason", r.reason));
    msg.appendChild(document.createTextNode(r.message));
    msg.title = r.message;
    line.appendChild(msg);
    line.appendChild(el("span", "dur", r.t === null && !r.duration ? "–" : seconds(took(r))));
    res.appendChild(line);
    res.hidden = !r.visible;
    r.el = res;
    return res;
  }

  /* Rows of `order` from `built` on, up to `limit` of them. */
  function buildSome(limit) {
    var frag = document.createDocumentFragment();
    var end = Math.min(order.length, built + limit);
    for (; built < end; built++) frag.appendChild(order[built].el || buildRow(order[built]));
    rowsEl.appendChild(frag);
  }

  function buildAll() { if (built < order.length) buildSome(order.length); }

  function buildInChunks() {
    buildSome(CHUNK);
    if (built < order.length) setTimeout(buildInChunks, 0);
    else document.body.setAttribute("data-ready", "1");
  }

  /* ---- sorting ----------------------------------------------------------- */
  var sortKey = "status", sortDir = 1;
  var comparators = {
    status: function (a, b) { return (severity[a.status] - severity[b.status]) || cmpName(a, b); },
    name: function (a, b) { return cmpName(a, b); },
    duration: function (a, b) { return (took(a) - took(b)) || cmpName(a, b); }
  };
  function cmpName(a, b) { return a.name < b.name ? -1 : a.name > b.name ? 1 : 0; }

  function sortBy(key, dir) {
    buildAll();
    sortKey = key; sortDir = dir;
    var cmp = comparators[key];
    order.sort(function (a, b) { return dir * cmp(a, b); });
    var frag = document.createDocumentFragment();
    order.forEach(function (r) { frag.appendChild(r.el); });
    rowsEl.appendChild(frag);
    document.querySelectorAll(".thead .sort").forEach(function (b) {
      b.classList.remove("asc", "desc");
      if (b.getAttribute("data-sort") === key) b.classList.add(dir > 0 ? "asc" : "desc");
    });
  }

  document.querySelectorAll(".thead .sort").forEach(function (button) {
    button.addEventListener("click", function () {
      var key = button.getAttribute("data-sort");
      // Durations start longest first: the slow tests are what one looks for.
      var dir = key === sortKey ? -sortDir : (key === "duration" ? -1 : 1);
      sortBy(key, dir);
    });
  });

  /* ---- details ----------------------------------------------------------- */
  function field(dl, label, value) {
    if (value === undefined || value === null || value === "") return;
    dl.appendChild(el("dt", null, label));
    var dd = el("dd");
    if (value instanceof Node) dd.appendChild(value); else dd.textContent = value;
    dl.appendChild(dd);
  }

  /* A block of text kept as [text, characters cut], with a note of the cut. */
  function textBlock(box, title, kept, cls, cutWhere, r) {
    if (!kept) return;
    box.appendChild(el("h4", null, title));
    var pre = el("pre", cls);
    if (cls === "diff") {
      kept[0].split("\n").forEach(function (ln, k, all) {
        if (k === all.length - 1 && ln === "") return;
        var c = ln.startsWith("+++") || ln.startsWith("---") ? "file"
              : ln.startsWith("+") ? "add" : ln.startsWith("-") ? "del"
              : ln.startsWith("@@") ? "hunk" : null;
        pre.appendChild(el("span", c, ln + "\n"));
      });
    } else {
      pre.textContent = kept[0];
    }
    if (kept[1] > 0) {
      var note = el("p", "note", "[" + kept[1].toLocaleString() + (cutWhere === "before" ? " earlier" : " more") +
                    " characters not shown; the full text is in ");
      var a = el("a", null, r.file);
      a.href = r.file;
      note.appendChild(a);
      if (r.logs.length) note.appendChild(document.createTextNode(" and " + r.logs.join(", ")));
      note.appendChild(document.createTextNode("]"));
      if (cutWhere === "before") box.appendChild(note);
      box.appendChild(pre);
      if (cutWhere !== "before") box.appendChild(note);
    } else {
      box.appendChild(pre);
    }
  }

  function buildDetail(r) {
    var box = el("div", "detail");
    var dl = el("dl");
    field(dl, "Description", r.description);
    field(dl, "Driver", r.driver);
    if (r.tags.length) {
      var tags = el("span");
      r.tags.forEach(function (t) { tags.appendChild(el("span", "tag", t)); });
      field(dl, "Tags", tags);
    }
    field(dl, "Duration", seconds(r.duration) + (r.wall !== null && r.wall !== undefined
      ? " of work; " + seconds(r.wall) + " from first start to last end (fragments side by side)" : ""));
    if (r.t !== null) {
      field(dl, "Started", "+" + seconds(r.t) + " into " + (r.shard !== null && r.shard !== undefined ? "shard " + r.shard : "the run") + (r.slot !== null ? ", slot " + r.slot : ""));
    }
    field(dl, "Attempts", String(r.attempts));
    if (r.quarantined) field(dl, "Quarantined", r.quarantined + "; its failures do not fail the run");
    if (r.history && r.history.length) field(dl, "Last runs", historyStrip(r));
    if (r.flips) field(dl, "Flaky", counted(r.flips, "flip") + " in its last " + r.history.length +
                        " runs: its verdict changed while its key stayed the same, or it passed on a retry");
    if (r.kind !== "testcase") field(dl, "Kind", r.kind);
    if (r.cached) field(dl, "Cached", "taken from an earlier run whose inputs matched (--incremental)");
    var link = el("a", "mono", r.file);
    link.href = r.file;
    field(dl, "Result file", link);
    if (r.missing) field(dl, "Note", "the result file could not be read; this is the index entry only");
    box.appendChild(dl);
    if (r.full_message && (r.full_message[0].indexOf("\n") >= 0 || r.full_message[0] !== r.message)) {
      textBlock(box, "Message", r.full_message, "message", "after", r);
    }
    if (r.commands.length) {
      box.appendChild(el("h4", null, "Commands"));
      var table = el("table", "cmds");
      var head = el("tr");
      ["step", "command", "exit", "duration"].forEach(function (h) { head.appendChild(el("th", null, h)); });
      table.appendChild(head);
      r.commands.forEach(function (c) {
        var tr = el("tr");
        tr.appendChild(el("td", null, c[0]));
        tr.appendChild(el("td", "cmd", c[1]));
        // "killed by SIGTERM after the 1 s timeout"; a plain status as a number.
        var exit = (c[4] || c[2] < 0) && c[5] ? c[5] : c[4] ? "timed out" : c[2] === null ? "–" : String(c[2]);
        tr.appendChild(el("td", "exit" + (c[4] || (c[2] !== 0 && c[2] !== null) ? " bad" : ""), exit));
        tr.appendChild(el("td", "d", seconds(c[3])));
        table.appendChild(tr);
      });
      box.appendChild(table);
    }
    if (r.subresults && r.subresults.length) box.appendChild(subresultList(r));
    textBlock(box, "Diff", r.diff, "diff", "after", r);
    textBlock(box, "Traceback", r.traceback, "traceback", "before", r);
    textBlock(box, "Output", r.output, "output", "before", r);
    if (!r.output && r.commands.length) box.appendChild(el("p", "note", "no output"));
    return box;
  }

  /* A result's last runs, oldest first and this one last: a square per run
     in its status colour, and a line of their durations above. */
  function historyStrip(r) {
    var runs = r.history.concat([[r.status, took(r)]]);
    var NS = "http://www.w3.org/2000/svg", cell = 12, gap = 2, h = 20;
    var svg = document.createElementNS(NS, "svg");
    var w = runs.length * (cell + gap);
    svg.setAttribute("width", w);
    svg.setAttribute("height", h + cell + 2);
    svg.setAttribute("class", "strip");
    var most = Math.max.apply(null, runs.map(function (x) { return x[1] || 0; })) || 1;
    var points = runs.map(function (x, k) {
      return (k * (cell + gap) + cell / 2).toFixed(1) + "," + (h - 2 - (x[1] || 0) / most * (h - 4)).toFixed(1);
    });
    var line = document.createElementNS(NS, "polyline");
    line.setAttribute("points", points.join(" "));
    line.setAttribute("class", "spark");
    svg.appendChild(line);
    runs.forEach(function (x, k) {
      var sq = document.createElementNS(NS, "rect");
      sq.setAttribute("x", k * (cell + gap));
      sq.setAttribute("y", h + 1);
      sq.setAttribute("width", cell);
      sq.setAttribute("height", cell);
      sq.setAttribute("class", "run s-" + known(x[0]) + (k === runs.length - 1 ? " now" : ""));
      var tip = document.createElementNS(NS, "title");
      tip.textContent = (k === runs.length - 1 ? "this run: " : "") + x[0] + ", " + seconds(x[1] || 0);
      sq.appendChild(tip);
      svg.appendChild(sq);
    });
    return svg;
  }

  /* The tests inside a testcase: those that failed first, each opening on
     its own output; the search terms narrow the list as they do the rows. */
  function subresultList(r) {
    var wrap = el("div", "subresults");
    var counts = STATUSES.filter(function (s) { return r.subcounts[s]; })
      .map(function (s) { return r.subcounts[s] + " " + s; }).join(", ");
    wrap.appendChild(el("h4", null, "Sub-results (" + r.subresults.length + (counts ? ": " + counts : "") + ")"));
    var list = el("ul", "sublist");
    var sorted = r.subresults.map(function (x, k) { return [x, k]; });
    sorted.sort(function (a, b) { return (severity[known(a[0][1])] - severity[known(b[0][1])]) || (a[1] - b[1]); });
    sorted.forEach(function (pair) {
      var x = pair[0], status = known(x[1]);
      var li = el("li", "sub " + status);
      li.setAttribute("data-hay", x[0].toLowerCase() + "\n" + (x[2] || "").toLowerCase());
      var head = el(x[4] ? "summary" : "div", "subline");
      head.appendChild(el("span", "badge small s-" + status, status));
      head.appendChild(el("span", "subname mono", x[0]));
      if (x[3] !== null && x[3] !== undefined) head.appendChild(el("span", "d", seconds(x[3])));
      if (x[2]) head.appendChild(el("span", "msg", x[2].split("\n")[0]));
      if (x[4]) {
        var more = el("details");
        more.appendChild(head);
        var pre = el("pre", "output");
        pre.textContent = (x[4][1] > 0 ? "[" + x[4][1].toLocaleString() + " earlier characters not shown]\n" : "") + x[4][0];
        more.appendChild(pre);
        li.appendChild(more);
      } else {
        li.appendChild(head);
      }
      list.appendChild(li);
    });
    wrap.appendChild(list);
    narrowSubresults(wrap);
    return wrap;
  }

  /* Where the search terms name some sub-results, only those show; where
     they name none (they matched the testcase itself), all do. */
  function narrowSubresults(wrap) {
    var items = wrap.querySelectorAll("li.sub"), hits = [], any = false;
    items.forEach(function (li) {
      var hay = li.getAttribute("data-hay");
      var hit = terms.length > 0 && terms.every(function (t) { return hay.indexOf(t) >= 0; });
      hits.push(hit);
      any = any || hit;
    });
    items.forEach(function (li, k) { li.hidden = any && !hits[k]; });
  }

  function toggle(r, open) {
    var res = r.el, line = res.firstChild;
    open = open === undefined ? !res.classList.contains("open") : open;
    if (open && !r.detail) {
      r.detail = buildDetail(r);
      res.appendChild(r.detail);
    }
    if (r.detail) r.detail.hidden = !open;
    res.classList.toggle("open", open);
    line.setAttribute("aria-expanded", String(open));
    linkTo(open ? r : null, r);
  }

  /* The URL names the result last opened (#result=NAME), so a failure can
     be linked to; closing it takes the name away again. replaceState: the
     back button leaves the report rather than stepping through rows. */
  var HASH = "#result=";
  var openNow = [];  /* open results, the latest last: closing one names the one before */
  function linkTo(opened, toggled) {
    document.getElementById("unknown-link").hidden = true;  /* the address names a result again */
    openNow = openNow.filter(function (r) { return r !== toggled; });
    if (opened) openNow.push(opened);
    else if (location.hash !== HASH + encodeURIComponent(toggled.name)) return;
    else opened = openNow.length ? openNow[openNow.length - 1] : null;
    var want = opened ? HASH + encodeURIComponent(opened.name) : "";
    if (location.hash === want) return;
    try {
      history.replaceState(null, "", want || location.pathname + location.search);
    } catch (err) { /* a file: URL some browsers refuse to rewrite: the page still works */ }
  }

  /* The result the address names; a name the report does not hold is said
     so, above the rows, rather than ignored. */
  function linked() {
    var note = document.getElementById("unknown-link");
    note.hidden = true;
    if (location.hash.indexOf(HASH) !== 0) return null;
    var name;
    try { name = decodeURIComponent(location.hash.slice(HASH.length)); } catch (err) { name = location.hash; }
    var r = byName.get(name) || null;
    if (!r) {
      note.textContent = "The link names a result this report does not hold: " + name;
      note.hidden = false;
    }
    return r;
  }

  rowsEl.addEventListener("click", function (e) {
    var line = e.target.closest(".line");
    if (line) toggle(results[+line.parentNode.getAttribute("data-i")]);
  });
  rowsEl.addEventListener("keydown", function (e) {
    if ((e.key === "Enter" || e.key === " ") && e.target.classList.contains("line")) {
      e.preventDefault();
      toggle(results[+e.target.parentNode.getAttribute("data-i")]);
    }
  });

  /* Show one result: make it visible whatever the filters, open it, scroll. */
  function reveal(r) {
    buildAll();
    if (!r.visible) {
      searchEl.value = "";
      document.querySelectorAll("[data-status-filter]").forEach(function (b) { b.checked = true; });
      readControls();
      applyFilter();
    }
    toggle(r, true);
    r.el.scrollIntoView({ block: "center" });
    r.el.classList.remove("flash");
    void r.el.offsetWidth;
    r.el.classList.add("flash");
  }

  /* The flaky and slowest lists, from the data: names are the tests'. */
  function fillList(key, items, note, total) {
    var box = document.querySelector('[data-list="' + key + '"]');
    if (!box) return;
    if (!items.length) { box.appendChild(el("p", "none", "none")); return; }
    var ul = el("ul");
    items.forEach(function (item) {
      var li = el("li");
      li.appendChild(el("span", "badge small s-" + known(item.status), known(item.status)));
      li.appendChild(document.createTextNode(" "));
      var a = el("a", "jump", item.name);
      a.href = "#";
      a.setAttribute("data-name", item.name);
      li.appendChild(a);
      li.appendChild(el("span", "was", " " + note(item)));
      ul.appendChild(li);
    });
    box.appendChild(ul);
    if (total > items.length) box.appendChild(el("p", "more", "and " + (total - items.length) + " more"));
  }
  if (data.lists) {
    fillList("flaky", data.lists.flaky, function (i) { return counted(i.flips, "flip"); }, data.lists.flaky_total);
    fillList("slowest", data.lists.slowest, function (i) { return i.took; }, data.lists.slowest.length);
  }

  document.querySelectorAll("a.jump").forEach(function (a) {
    a.addEventListener("click", function (e) {
      e.preventDefault();
      var r = byName.get(a.getAttribute("data-name"));
      if (r) reveal(r);
    });
  });

  /* ---- timeline ---------------------------------------------------------- */
  function drawTimeline() {
    var body = document.getElementById("timeline-body");
    var ran = results.filter(function (r) { return r.t !== null && r.lane !== null && r.lane !== undefined; });
    var span = data.duration;
    ran.forEach(function (r) { span = Math.max(span, r.t + took(r)); });
    if (!ran.length || !(span > 0)) {
      body.appendChild(el("p", "tl-empty", "Nothing ran."));
      return;
    }
    var lanes = data.lanes, laneOf = new Map(), busy = new Map();
    lanes.forEach(function (lane, k) { laneOf.set(lane.key, k); busy.set(lane.key, 0); });
    var laneH = lanes.length <= 16 ? 20 : Math.max(6, Math.floor(320 / lanes.length));
    var W = 1000, H = laneH * lanes.length, NS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("height", H + 2);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "timeline of the run, one lane per slot" + (lanes.length && lanes[lanes.length - 1].group ? ", grouped by shard" : ""));
    var defs = document.createElementNS(NS, "defs");
    var pattern = document.createElementNS(NS, "pattern");
    pattern.setAttribute("id", "idle");
    pattern.setAttribute("patternUnits", "userSpaceOnUse");
    pattern.setAttribute("width", "6");
    pattern.setAttribute("height", "6");
    pattern.setAttribute("patternTransform", "rotate(45)");
    var stripe = document.createElementNS(NS, "rect");
    stripe.setAttribute("width", "2");
    stripe.setAttribute("height", "6");
    stripe.setAttribute("fill", "#e4e8ec");
    pattern.appendChild(stripe);
    defs.appendChild(pattern);
    svg.appendChild(defs);
    lanes.forEach(function (lane, k) {
      var bg = document.createElementNS(NS, "rect");
      bg.setAttribute("class", "lane");
      bg.setAttribute("data-slot", lane.key);
      bg.setAttribute("x", 0); bg.setAttribute("y", k * laneH);
      bg.setAttribute("width", W); bg.setAttribute("height", laneH);
      bg.setAttribute("fill", "url(#idle)");
      svg.appendChild(bg);
      if (k && lane.group !== lanes[k - 1].group) {  /* where one shard's lanes end */
        var rule = document.createElementNS(NS, "rect");
        rule.setAttribute("class", "group-rule");
        rule.setAttribute("x", 0); rule.setAttribute("y", k * laneH - 1);
        rule.setAttribute("width", W); rule.setAttribute("height", 2);
        rule.setAttribute("fill", "#8a939c");
        svg.appendChild(rule);
      }
    });
    var minW = W * 0.0015, pad = laneH > 10 ? 2 : 1;
    var frag = document.createDocumentFragment();
    var named = [];
    ran.forEach(function (r) {
      var k = laneOf.get(r.lane);
      var bar = document.createElementNS(NS, "rect");
      bar.setAttribute("class", "bar s-" + r.status);
      bar.setAttribute("data-i", r.i);
      bar.setAttribute("x", (r.t / span * W).toFixed(3));
      bar.setAttribute("y", k * laneH + pad);
      bar.setAttribute("width", Math.max(minW, took(r) / span * W).toFixed(3));
      bar.setAttribute("height", laneH - 2 * pad);
      frag.appendChild(bar);
      named.push([r, k]);
    });
    svg.appendChild(frag);
    busyTime(ran, busy);

    var labels = el("div", "tl-labels");
    lanes.forEach(function (lane) {
      var s = lane.key, share = busy.get(s) / span;
      var label = el("div", share ? null : "idle");
      label.style.height = laneH + "px";
      label.style.lineHeight = laneH + "px";
      label.setAttribute("data-slot", s);
      label.appendChild(el("span", null, laneH >= 14 || lanes.length <= 16 || lane.group ? lane.label : String(s)));
      label.appendChild(el("b", null, share ? Math.min(100, Math.round(share * 100)) + "% busy" : "idle"));
      labels.appendChild(label);
    });
    var plot = el("div", "tl-plot");
    plot.appendChild(svg);
    var axis = el("div", "tl-axis");
    var step = niceStep(span / 8);
    for (var k = 0; k * step <= span + 1e-9; k++) {
      var t = k * step;
      var tick = el("span", null, tickLabel(t, step));
      tick.style.left = (t / span * 100) + "%";
      if (t / span < 0.97 || t === 0) axis.appendChild(tick);
    }
    plot.appendChild(axis);
    var grid = el("div", "tl");
    grid.appendChild(labels);
    grid.appendChild(plot);
    body.appendChild(grid);
    nameBars(plot, svg, named, span, laneH, pad);

    var tip = document.getElementById("tip");
    svg.addEventListener("mousemove", function (e) {
      var i = e.target.getAttribute("data-i");
      if (i === null) { tip.hidden = true; return; }
      var r = results[+i];
      tip.textContent = "";
      tip.appendChild(el("span", "tip-name", r.name));
      tip.appendChild(document.createTextNode(r.status + (r.reason ? " (" + r.reason + ")" : "") +
        " · " + seconds(took(r)) + " · " + lanes[laneOf.get(r.lane)].label + " · +" + seconds(r.t)));
      tip.hidden = false;
      var x = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
      tip.style.left = Math.max(4, x) + "px";
      tip.style.top = (e.clientY + 16) + "px";
    });
    svg.addEventListener("mouseleave", function () { tip.hidden = true; });
    svg.addEventListener("click", function (e) {
      var i = e.target.getAttribute("data-i");
      if (i !== null) reveal(results[+i]);
    });
  }

  /* Each bar wide enough to read (NAME_MIN px, in lanes of 14 px or more)
     carries its testcase's name, cut with an ellipsis where it runs out:
     HTML over the SVG, which is stretched to the page's width and would
     stretch text with it. */
  var NAME_MIN = 48;
  function nameBars(plot, svg, named, span, laneH, pad) {
    var width = svg.getBoundingClientRect().width;
    if (laneH < 14 || !(width > 0)) return;
    var frag = document.createDocumentFragment();
    named.forEach(function (pair) {
      var r = pair[0], k = pair[1];
      if (took(r) / span * width < NAME_MIN) return;
      var name = el("span", "tl-name", r.name);
      name.style.left = (r.t / span * 100) + "%";
      name.style.width = (took(r) / span * 100) + "%";
      name.style.top = (k * laneH + pad + 1) + "px";
      name.style.height = name.style.lineHeight = (laneH - 2 * pad) + "px";
      frag.appendChild(name);
    });
    plot.appendChild(frag);
  }

  /* Time each slot spent running something: the union of its bars (a
     testcase of several steps may overlap another on its last slot). */
  function busyTime(ran, busy) {
    var sorted = ran.slice().sort(function (a, b) { return a.t - b.t; });
    var reach = new Map();
    sorted.forEach(function (r) {
      var from = Math.max(r.t, reach.has(r.lane) ? reach.get(r.lane) : 0), to = r.t + took(r);
      if (to > from) busy.set(r.lane, busy.get(r.lane) + to - from);
      reach.set(r.lane, Math.max(to, reach.has(r.lane) ? reach.get(r.lane) : 0));
    });
  }

  function tickLabel(t, step) {
    if (t === 0) return "0";
    if (t >= 60) return seconds(t);
    if (step >= 1) return Math.round(t) + " s";
    if (step >= 0.1) return t.toFixed(1) + " s";
    return (t * 1000).toFixed(step >= 0.001 ? 0 : 1) + " ms";
  }

  function niceStep(raw) {
    var p = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }

  /* ---- start ------------------------------------------------------------- */
  order.sort(comparators.status);
  document.querySelector('.thead .sort[data-sort="status"]').classList.add("asc");
  applyFilter();
  buildInChunks();
  drawTimeline();
  var first = linked();
  if (first) reveal(first);
  window.addEventListener("hashchange", function () {
    var r = linked();
    if (r) reveal(r);
  });
})();
