# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pmem.poison contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report as files: JSON, Markdown and one self-contained HTML page.

Pure functions from the fleet dict (plugin_utils.report.fleet_summary) to text. Private API.
The HTML needs no server and loads nothing: inline CSS, an inline SVG trend and a short inline
script that sorts and filters the tables (the page stays readable with scripts off). A filter can
come with the link: ``pmem-poison-report.html#hosts=needs_decision`` (words, all must match).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
from html import escape

from ansible_collections.pmem.poison.plugins.plugin_utils.report import worst_first

DECIDE_HELP = ("Restore from a known-good copy (`ansible-playbook pmem.poison.restore -l HOST -e entry_id=ID "
               "-e source=PATH`) or accept the loss (`ansible-playbook pmem.poison.accept_loss -l HOST "
               "-e entry_id=ID -e reason=WHY`).")
OFFLINE_HELP = ("Unmount the filesystem (or stop the users of the namespace), then run `pmem.poison.remediate` "
                "with `remediate_allow_offline_window: true`; metadata needs `xfs_repair`/`e2fsck` first.")


def render_json(fleet):
    """One top-level key a line, list items (hosts, decisions...) one a line: greppable, diffable,
    and written by json's C encoder (an indented dump is pure Python: 0.6 s at 1000 hosts)."""
    compact = json.JSONEncoder(sort_keys=True, separators=(", ", ": ")).encode
    lines = []
    for key in sorted(fleet):
        value = fleet[key]
        if isinstance(value, list) and value:
            body = "[\n" + ",\n".join("    " + compact(item) for item in value) + "\n  ]"
        else:
            body = compact(value)
        lines.append("  %s: %s" % (compact(key), body))
    return "{\n" + ",\n".join(lines) + "\n}\n"


def _verdict(fleet):
    return "All hosts clean." if fleet.get("all_clean") else "Not all hosts are clean."


def _state(entry):
    words = ["quarantined (marked)" if entry.get("quarantined") else "recorded"]
    if entry.get("contained"):
        words.append("contained: " + "+".join(entry["contained"]))
    if entry.get("shared"):
        words.append("reflink-shared")
    return ", ".join(words)


def _why(entry):
    why = entry.get("reason") or ""
    if entry.get("next_step"):
        why += ". Next: %s" % entry["next_step"]
    return why


def _status(host):
    return host.get("status", "") + (" (check mode)" if host.get("check_mode") else "")


def _cleared_rows(fleet):
    return [(h, c) for h in fleet.get("hosts", []) for c in h.get("cleared", [])]


# --- Markdown ---------------------------------------------------------------------------------

def _md(value):
    return str("" if value is None else value).replace("|", "\\|").replace("\n", " ")


def _md_table(header, rows, numeric=()):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i in numeric else "---" for i in range(len(header))) + "|"]
    lines.extend("| " + " | ".join(_md(cell) for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def render_markdown(fleet):
    t = fleet["totals"]
    out = ["# %s" % fleet.get("title"), "",
           "Generated %s. **%s**" % (fleet.get("generated_at"), _verdict(fleet)), ""]
    out.append(_md_table(
        ["hosts", "clean", "remediated", "need a decision", "need an offline window", "failed", "not run",
         "open entries", "lost bytes", "cleared"],
        [[t["hosts"], t["clean"], t["remediated"], t["needs_decision"], t["needs_offline_window"], t["failed"],
          t["not_run"], t["open_entries"], t["lost_bytes"], t["cleared"]]], numeric=range(10)))
    out.append("")
    if fleet.get("open_by_kind"):
        out += ["Open entries by owner kind: %s." % ", ".join(
            "%s %s" % (k, v) for k, v in fleet["open_by_kind"].items()), ""]
    if fleet.get("hosts_truncated_lists"):
        out += ["> Badblocks lists near the kernel's limit on %s: counts there are a lower bound."
                % ", ".join(fleet["hosts_truncated_lists"]), ""]
    hosts = sorted(fleet.get("hosts", []), key=worst_first)
    out += ["## Hosts (worst first)", "", _md_table(
        ["host", "status", "bad ranges", "open entries", "lost bytes", "cleared"],
        [[h["host"], _status(h), h["bad_ranges"], len(h["open_entries"]), h["lost_bytes"], len(h["cleared"])]
         for h in hosts], numeric=(2, 3, 4, 5)), ""]
    out += ["## Needs a decision", ""]
    if fleet.get("decisions"):
        out += [DECIDE_HELP, "", _md_table(
            ["host", "entry", "kind", "paths", "file offset", "bytes", "state", "why"],
            [[e["host"], "`%s`" % e["id"], e["kind"], "<br>".join(e.get("paths") or []),
              "" if e.get("file_offset") is None else e["file_offset"], e.get("length"), _state(e), _why(e)]
             for e in fleet["decisions"]], numeric=(4, 5))]
    else:
        out.append("Nothing.")
    out += ["", "## Needs an offline window", ""]
    if fleet.get("offline_window"):
        out += [OFFLINE_HELP, "", _md_table(
            ["host", "entry", "kind", "range", "bytes", "steps"],
            [[e["host"], "`%s`" % e["id"], e["kind"], "`%s`" % e.get("range_id"), e.get("length"),
              "; ".join(e.get("steps") or [])] for e in fleet["offline_window"]], numeric=(4,))]
    else:
        out.append("Nothing.")
    out += ["", "## Cleared this run", ""]
    cleared = _cleared_rows(fleet)
    if cleared:
        out.append(_md_table(
            ["host", "entry", "method", "path", "bytes", "source", "sha256 of the written range"],
            [[h["host"], "`%s`" % c["id"], (c.get("method") or "") + (" (verified)" if c.get("verified") else ""),
              c.get("path") or "", c.get("length"), c.get("source") or "",
              "`%s`" % c["sha256"] if c.get("sha256") else ""] for h, c in cleared], numeric=(4,)))
    else:
        out.append("Nothing.")
    if fleet.get("dimms"):
        out += ["", "## DIMMs holding bad ranges (most first)", "", _md_table(
            ["host", "DIMM", "bad ranges", "bytes"],
            [[d["host"], d["dimm"], d.get("ranges"), d.get("bytes")] for d in fleet["dimms"]], numeric=(2, 3))]
    if fleet.get("warnings"):
        out += ["", "## Warnings (poison no list shows, events the kernel dropped)", "", _md_table(
            ["host", "warning"], [[w["host"], w["message"]] for w in fleet["warnings"]])]
    failed = [h for h in hosts if h.get("status") in ("failed", "not_run")]
    if failed:
        out += ["", "## Failed or not run", ""]
        for h in failed:
            failure = h.get("failure") or {}
            out.append("- **%s**: %s%s" % (h["host"], h["status"], (": %s: %s" % (
                failure.get("task"), failure.get("msg"))) if failure else ""))
    return "\n".join(out) + "\n"


# --- HTML -------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1b1b1b; }
h1 { margin-bottom: .2rem; }
.meta { color: #555; }
.verdict { font-weight: bold; padding: .4rem .8rem; display: inline-block; border-radius: 4px; }
.ok { background: #d8f3dc; } .bad { background: #ffe0e0; }
table { border-collapse: collapse; margin: .4rem 0 1.6rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; }
th { background: #f2f2f2; }
th.sortable { cursor: pointer; } th.sortable::after { content: " \\2195"; color: #999; }
input.filter { margin: .4rem 0; padding: .2rem .4rem; width: 22rem; }
.scroll { max-height: 36rem; overflow: auto; display: inline-block; }
code { font-size: .9em; }
.status-clean { color: #1b7a36; } .status-remediated { color: #1b5e7a; }
.status-needs_decision, .status-needs_offline_window { color: #9a6700; }
.status-failed, .status-not_run { color: #b00020; font-weight: bold; }
svg text { font-size: 11px; fill: #333; }
td.trend { font-family: monospace; letter-spacing: 1px; white-space: pre; }
"""

# Sort on a header click (numbers by value), filter rows by a text box; no libraries, no network.
_SCRIPT = """
document.querySelectorAll('table.data').forEach(function (table) {
  var body = table.tBodies[0];
  table.querySelectorAll('th').forEach(function (th, col) {
    th.classList.add('sortable');
    th.addEventListener('click', function () {
      var dir = th.dataset.dir === 'asc' ? 'desc' : 'asc';
      th.dataset.dir = dir;
      var numeric = th.classList.contains('n');
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v || a.cells[col].textContent;
        var y = b.cells[col].dataset.v || b.cells[col].textContent;
        var r = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
        return dir === 'asc' ? r : -r;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
  var box = document.querySelector('input.filter[data-for="' + table.id + '"]');
  if (box) {
    box.addEventListener('input', function () {
      var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
      var shown = 0;
      Array.prototype.forEach.call(body.rows, function (row) {
        var text = row.textContent.toLowerCase();
        var keep = words.every(function (w) { return text.indexOf(w) >= 0; });
        row.style.display = keep ? '' : 'none';
        shown += keep ? 1 : 0;
      });
      var count = document.getElementById(table.id + '-shown');
      if (count) { count.textContent = shown; }
    });
    // a link can carry a filter: report.html#hosts=needs_decision shows those hosts only
    var wanted = location.hash.match(new RegExp('[#&]' + table.id + '=([^&]*)'));
    if (wanted) {
      box.value = decodeURIComponent(wanted[1].replace(/\\+/g, ' '));
      box.dispatchEvent(new Event('input'));
    }
  }
});
"""


def _e(value):
    return escape("" if value is None else str(value), quote=True)


def _cell(value, numeric=False, css=None, sort_value=None):
    attrs = []
    classes = (["n"] if numeric else []) + ([css] if css else [])
    if classes:
        attrs.append('class="%s"' % " ".join(classes))
    if sort_value is not None:
        attrs.append('data-v="%s"' % _e(sort_value))
    return "<td%s>%s</td>" % ((" " + " ".join(attrs)) if attrs else "", value)


def _table(table_id, header, rows, numeric=(), filterable=False, label=""):
    head = "".join('<th class="n">%s</th>' % _e(h) if i in numeric else "<th>%s</th>" % _e(h)
                   for i, h in enumerate(header))
    parts = []
    if filterable:
        parts.append('<p><input class="filter" type="search" data-for="%s" placeholder="filter %s (words, all must match)"'
                     ' aria-label="filter %s"> <span id="%s-shown">%d</span> of %d shown</p>'
                     % (table_id, _e(label), _e(label), table_id, len(rows), len(rows)))
    parts.append('<div class="scroll"><table class="data" id="%s"><thead><tr>%s</tr></thead><tbody>'
                 % (table_id, head))
    parts.extend("<tr>%s</tr>" % "".join(row) for row in rows)
    parts.append("</tbody></table></div>")
    return "\n".join(parts)


def _trend_svg(history):
    """Open entries and lost bytes over the kept runs, as two rows of bars (inline SVG)."""
    if not history:
        return ""
    width, height, gap, label_w = 14, 50, 3, 190  # label_w: room for "lost bytes (max N)"
    series = (("open entries", [int((r.get("totals") or {}).get("open_entries") or 0) for r in history], "#9a6700"),
              ("lost bytes", [int((r.get("totals") or {}).get("lost_bytes") or 0) for r in history], "#b00020"))
    total_w = label_w + len(history) * (width + gap)
    out = ['<svg id="trend" role="img" aria-label="open entries and lost bytes over the last %d runs" '
           'width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">' % (len(history), total_w, 2 * (height + 24))]
    for row, (label, values, colour) in enumerate(series):
        top = row * (height + 24) + 4
        peak = max(values) or 1
        out.append('<text x="0" y="%d">%s (max %d)</text>' % (top + height // 2, _e(label), max(values)))
        for i, value in enumerate(values):
            h = int(round(height * value / peak))
            out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s: %s %d</title></rect>'
                       % (label_w + i * (width + gap), top + height - h, width, max(h, 1), colour,
                          _e(history[i].get("generated_at")), _e(label), value))
    out.append("</svg>")
    return "\n".join(out)


PER_HOST_CHART = 30  # hosts drawn in the per-host chart (the worst); the table holds them all
_SPARK = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"


def _per_host_svg(hosts):
    """Open entries and lost bytes of the worst hosts that have any, one pair of bars a host."""
    shown = [h for h in hosts if h["open_entries"] or h["lost_bytes"]][:PER_HOST_CHART]
    if not shown:
        return ""
    row, bar_w, label_w = 16, 180, 130
    most_open = max(len(h["open_entries"]) for h in shown) or 1
    most_lost = max(h["lost_bytes"] for h in shown) or 1
    out = ['<svg id="per-host" role="img" aria-label="open entries and lost bytes of the %d worst hosts" '
           'width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">' % (
               len(shown), label_w + 2 * (bar_w + 80), 20 + row * len(shown)),
           '<text x="%d" y="12">open entries</text><text x="%d" y="12">lost bytes</text>' % (
               label_w, label_w + bar_w + 80)]
    for i, h in enumerate(shown):
        y = 18 + i * row
        n_open, lost = len(h["open_entries"]), h["lost_bytes"]
        w_open = int(round(bar_w * n_open / most_open))
        w_lost = int(round(bar_w * lost / most_lost))
        out.append('<g class="host" data-host="%s"><text x="0" y="%d">%s</text>'
                   '<rect class="open" x="%d" y="%d" width="%d" height="%d" fill="#9a6700"><title>%s: %d open</title></rect>'
                   '<text x="%d" y="%d">%d</text>'
                   '<rect class="lost" x="%d" y="%d" width="%d" height="%d" fill="#b00020"><title>%s: %d bytes lost</title></rect>'
                   '<text x="%d" y="%d">%d</text></g>' % (
                       _e(h["host"]), y + 10, _e(h["host"]),
                       label_w, y, max(w_open, 1), row - 4, _e(h["host"]), n_open,
                       label_w + w_open + 4, y + 10, n_open,
                       label_w + bar_w + 80, y, max(w_lost, 1), row - 4, _e(h["host"]), lost,
                       label_w + bar_w + 80 + w_lost + 4, y + 10, lost))
    out.append("</svg>")
    return "\n".join(out)


def _host_trend(history, host):
    """(sparkline text, title) of a host's open entries over the kept runs (a space: not in that run)."""
    values = [(_history_hosts(r).get(host) or [None])[0] for r in history]
    known = [v for v in values if v is not None]
    top = max(known or [0]) or 1
    spark = "".join(" " if v is None else _SPARK[min(len(_SPARK) - 1, int(v * (len(_SPARK) - 1) / top))]
                    for v in values)
    return spark, "open entries per run: %s" % ", ".join("-" if v is None else str(v) for v in values)


def _history_hosts(record):
    hosts = record.get("hosts") if isinstance(record, dict) else None
    return hosts if isinstance(hosts, dict) else {}


def render_html(fleet):
    t = fleet["totals"]
    hosts = sorted(fleet.get("hosts", []), key=worst_first)
    out = ['<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>%s</title>" % _e(fleet.get("title")), "<style>%s</style>" % _CSS, "</head>", "<body>",
           "<h1>%s</h1>" % _e(fleet.get("title")),
           '<p class="meta">Generated %s</p>' % _e(fleet.get("generated_at")),
           '<p class="verdict %s" id="verdict">%s</p>' % ("ok" if fleet.get("all_clean") else "bad", _e(_verdict(fleet)))]
    totals = ["hosts", "clean", "remediated", "needs_decision", "needs_offline_window", "failed", "not_run",
              "open_entries", "lost_bytes", "cleared"]
    out.append('<table id="totals"><tr>%s</tr><tr>%s</tr></table>' % (
        "".join('<th class="n">%s</th>' % _e(k.replace("_", " ")) for k in totals),
        "".join('<td class="n">%s</td>' % _e(t[k]) for k in totals)))
    if fleet.get("open_by_kind"):
        out.append("<p>Open entries by owner kind: %s.</p>" % _e(", ".join(
            "%s %s" % (k, v) for k, v in fleet["open_by_kind"].items())))
    if fleet.get("hosts_truncated_lists"):
        out.append("<p><strong>Badblocks lists near the kernel's limit</strong> on %s: counts there are a lower bound.</p>"
                   % _e(", ".join(fleet["hosts_truncated_lists"])))
    if len(fleet.get("history") or []) > 1:
        out += ["<h2>Last %d runs</h2>" % len(fleet["history"]), _trend_svg(fleet["history"])]

    chart = _per_host_svg(hosts)
    if chart:
        out += ["<h2>Open entries and lost bytes per host (worst %d)</h2>" % min(
            PER_HOST_CHART, len([h for h in hosts if h["open_entries"] or h["lost_bytes"]])), chart]

    out.append("<h2>Hosts (worst first)</h2>")
    history = [r for r in fleet.get("history") or [] if isinstance(r, dict)]
    trend = len(history) > 1
    rows = []
    for h in hosts:
        status = _e(_status(h))
        failure = h.get("failure") or {}
        if failure:
            status += ": %s: %s" % (_e(failure.get("task")), _e(failure.get("msg")))
        status_cell = _cell(status, css="status-%s" % _e(h.get("status")), sort_value="%d" % worst_first(h)[0])
        row = [_cell(_e(h["host"])), status_cell, _cell(h["bad_ranges"], True), _cell(len(h["open_entries"]), True),
               _cell(h["lost_bytes"], True), _cell(len(h["cleared"]), True)]
        if trend:
            spark, title = _host_trend(history, h["host"])
            row.append('<td class="trend" title="%s">%s</td>' % (_e(title), _e(spark)))
        rows.append(row)
    header = ["host", "status", "bad ranges", "open entries", "lost bytes", "cleared"]
    if trend:
        header.append("open entries, last %d runs" % len(history))
    out.append(_table("hosts", header, rows, numeric=(2, 3, 4, 5), filterable=True, label="hosts"))

    out.append("<h2>Needs a decision</h2>")
    if fleet.get("decisions"):
        out.append("<p>%s</p>" % _code(DECIDE_HELP))
        out.append(_table("decisions", ["host", "entry", "kind", "paths", "file offset", "bytes", "state", "why"], [
            [_cell(_e(e["host"])), _cell("<code>%s</code>" % _e(e["id"])), _cell(_e(e["kind"])),
             _cell("<br>".join(_e(p) for p in e.get("paths") or [])),
             _cell("" if e.get("file_offset") is None else _e(e["file_offset"]), True), _cell(_e(e.get("length")), True),
             _cell(_e(_state(e))), _cell(_e(_why(e)))] for e in fleet["decisions"]],
            numeric=(4, 5), filterable=True, label="decisions"))
    else:
        out.append("<p>Nothing.</p>")

    out.append("<h2>Needs an offline window</h2>")
    if fleet.get("offline_window"):
        out.append("<p>%s</p>" % _code(OFFLINE_HELP))
        out.append(_table("offline", ["host", "entry", "kind", "range", "bytes", "steps"], [
            [_cell(_e(e["host"])), _cell("<code>%s</code>" % _e(e["id"])), _cell(_e(e["kind"])),
             _cell("<code>%s</code>" % _e(e.get("range_id"))), _cell(_e(e.get("length")), True),
             _cell("<br>".join(_e(s) for s in e.get("steps") or []))] for e in fleet["offline_window"]],
            numeric=(4,), filterable=True, label="offline entries"))
    else:
        out.append("<p>Nothing.</p>")

    out.append("<h2>Cleared this run</h2>")
    cleared = _cleared_rows(fleet)
    if cleared:
        out.append(_table("cleared", ["host", "entry", "method", "path", "bytes", "source", "sha256 of the written range"], [
            [_cell(_e(h["host"])), _cell("<code>%s</code>" % _e(c["id"])),
             _cell(_e((c.get("method") or "") + (" (verified)" if c.get("verified") else ""))),
             _cell(_e(c.get("path"))), _cell(_e(c.get("length")), True), _cell(_e(c.get("source"))),
             _cell("<code>%s</code>" % _e(c.get("sha256")) if c.get("sha256") else "")] for h, c in cleared],
            numeric=(4,), filterable=len(cleared) > 20, label="cleared"))
    else:
        out.append("<p>Nothing.</p>")

    if fleet.get("dimms"):
        out.append("<h2>DIMMs holding bad ranges (most first)</h2>")
        out.append(_table("dimms", ["host", "DIMM", "bad ranges", "bytes"], [
            [_cell(_e(d["host"])), _cell(_e(d["dimm"])), _cell(_e(d.get("ranges")), True), _cell(_e(d.get("bytes")), True)]
            for d in fleet["dimms"]], numeric=(2, 3), filterable=len(fleet["dimms"]) > 20, label="DIMMs"))
    if fleet.get("warnings"):
        out.append("<h2>Warnings (poison no list shows, events the kernel dropped)</h2>")
        out.append(_table("warnings", ["host", "warning"], [
            [_cell(_e(w["host"])), _cell(_e(w["message"]))] for w in fleet["warnings"]],
            filterable=len(fleet["warnings"]) > 20, label="warnings"))
    out += ["<script>%s</script>" % _SCRIPT, "</body>", "</html>"]
    return "\n".join(out) + "\n"


def _code(text):
    """Backtick spans of the help texts as <code>, everything escaped."""
    parts = str(text).split("`")
    return "".join(("<code>%s</code>" if i % 2 else "%s") % escape(p) for i, p in enumerate(parts))
