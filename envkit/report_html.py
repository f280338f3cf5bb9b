"""`envkit report`: the validation records as one self-contained static HTML page.

Inline CSS, bench plots embedded as data: URIs, no script and no network: the page can be
committed, attached to a CI run or opened from disk.
"""

from __future__ import annotations

import base64
import html
import tempfile
from pathlib import Path

from . import records, report

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em; color: #1d2329; background: #fff; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccd; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #bcc3cc; padding: 6px 10px; text-align: left; vertical-align: top; }
th { background: #eef1f5; }
td.cell { min-width: 11em; }
td.pass { background: #d8f3dc; } td.fail { background: #ffd6d6; } td.none { color: #889; }
.status { font-weight: 700; text-transform: uppercase; }
.record { border: 1px solid #ccd; padding: 0.5em 1em; margin: 1.5em 0; }
.record img { max-width: 48%; margin: 0.5em 1% 0 0; border: 1px solid #dde; }
.regression { color: #a00000; }
code { background: #f3f4f6; padding: 0 3px; }
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _bench(record: dict) -> dict:
    return ((record.get("bench") or {}).get("report")) or {}


def accuracy(record: dict):
    return (_bench(record).get("convergence") or {}).get("accuracy")


def best_throughput(record: dict):
    rows = [
        r["images_per_s"]
        for r in _bench(record).get("throughput") or []
        if r.get("images_per_s") and not r.get("error")
    ]
    return max(rows) if rows else None


def grid(found: list[dict]) -> tuple[list[str], list[str], dict]:
    """Entries (rows), host kinds (columns) and the latest record of each pair."""
    latest: dict = {}
    for record in sorted(found, key=lambda r: (r["finished"], r["id"])):
        latest[(record["entry"]["name"], record["host"]["kind"])] = record
    entries = sorted({k[0] for k in latest})
    kinds = sorted({k[1] for k in latest})
    return entries, kinds, latest


def _cell(record: dict | None, entry: str, kind: str) -> str:
    attrs = f'data-entry="{_e(entry)}" data-host="{_e(kind)}"'
    if record is None:
        return f'<td class="cell none" {attrs}>not verified</td>'
    acc, best = accuracy(record), best_throughput(record)
    return (
        f'<td class="cell {record["status"]}" {attrs} data-status="{record["status"]}">'
        f'<span class="status">{record["status"]}</span><br>'
        f'accuracy <span class="accuracy">{"-" if acc is None else f"{acc:.4f}"}</span><br>'
        f'<span class="throughput">{"-" if best is None else f"{best:.1f}"}</span> img/s<br>'
        f'<span class="date">{_e(record["finished"][:10])}</span> '
        f'<a href="#{_e(record["id"])}">details</a>'
        + (
            f'<br><span class="regression">{len(record["regressions"])} regression(s)</span>'
            if record["regressions"]
            else ""
        )
        + "</td>"
    )


def _plots(record: dict) -> list[str]:
    """The bench plots of a record as data: URIs (none without matplotlib or a report)."""
    doc = _bench(record)
    if not doc:
        return []
    with tempfile.TemporaryDirectory(prefix="envkit-report-") as tmp:
        try:
            paths = report.plot_bench(doc, Path(tmp), prefix=f"{record['id']}-")
        except report.PlottingUnavailable:
            return []
        return [
            "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode("ascii")
            for p in paths
        ]


def _record_section(record: dict) -> str:
    host, entry = record["host"], record["entry"]
    doc = _bench(record)
    conv = doc.get("convergence") or {}
    parts = [
        f'<section class="record" id="{_e(record["id"])}">',
        f"<h3>{_e(entry['name'])} on {_e(host['kind'])}: "
        f'<span class="status">{_e(record["status"])}</span></h3>',
        "<table>",
        f"<tr><th>record</th><td><code>{_e(record['id'])}</code> ({_e(record['source'])}, "
        f"envkit {_e(record['envkit_version'])})</td></tr>",
        f"<tr><th>when</th><td>{_e(record['started'])} to {_e(record['finished'])}</td></tr>",
        f"<tr><th>stack</th><td>torch {_e(entry['torch'])}, torchvision "
        f"{_e(entry.get('torchvision'))}, CUDA {_e(entry['cuda'] or 'none')}, cuDNN "
        f"{_e(entry.get('cudnn'))}, Python {_e(entry['python'])}</td></tr>",
        f"<tr><th>image</th><td><code>{_e(record['image']['ref'])}</code><br>"
        f"<code>{_e(record['image']['id'])}</code></td></tr>",
        f"<tr><th>host</th><td>GPUs: "
        f"{_e(', '.join(g['name'] for g in host['gpus']) or 'none')}; driver "
        f"{_e(host['driver'] or 'none')}; CPU {_e(host['cpu']['model'])} x "
        f"{_e(host['cpu']['count'])}; Docker {_e((host.get('engine') or {}).get('version'))}"
        "</td></tr>",
        f"<tr><th>failed</th><td>{_e(', '.join(record['failed']) or 'nothing')}</td></tr>",
    ]
    if doc:
        parts.append(
            f"<tr><th>bench</th><td>{_e(doc.get('status'))}: accuracy "
            f"{_e(conv.get('accuracy'))} (gate {_e(conv.get('threshold'))}), "
            f"{_e(conv.get('epochs'))} epochs in {_e(conv.get('seconds'))} s</td></tr>"
        )
    test = record.get("project_test")
    if test:
        parts.append(
            f"<tr><th>project test</th><td><code>{_e(test['command'])}</code>: exit "
            f"{_e(test['exit_code'])} in {_e(test['seconds'])} s</td></tr>"
        )
    parts.append("</table>")
    rows = [r for r in doc.get("throughput") or [] if r.get("images_per_s")]
    if rows:
        parts.append(
            "<table><tr><th>precision</th><th>batch</th><th>images/s</th><th>spread</th></tr>"
        )
        for row in rows:
            parts.append(
                f"<tr><td>{_e(row['precision'])}{' NHWC' if row.get('channels_last') else ''}"
                f"</td><td>{_e(row['batch'])}</td><td>{row['images_per_s']:.1f}</td>"
                f"<td>{_e(row.get('spread'))}</td></tr>"
            )
        parts.append("</table>")
    doctor = record.get("doctor") or {}
    noted = [c for c in doctor.get("checks", []) if c["status"] in ("fail", "warn")]
    if noted:
        parts.append("<p>doctor:</p><ul>")
        parts += [
            f"<li>{_e(c['status'])} <b>{_e(c['id'])}</b>: {_e(c['detail'])}</li>" for c in noted
        ]
        parts.append("</ul>")
    for finding in record["regressions"]:
        parts.append(
            f'<p class="regression">regression {_e(finding["check"])}: {_e(finding["detail"])}</p>'
        )
    parts += [f'<img alt="bench plot" src="{uri}">' for uri in _plots(record)]
    parts.append("</section>")
    return "\n".join(parts)


def render(found: list[dict], title: str = "envkit validation records") -> str:
    """The whole page."""
    entries, kinds, latest = grid(found)
    head = "".join(f"<th>{_e(k)}</th>" for k in kinds)
    body = "\n".join(
        f'<tr><th class="entry">{_e(entry)}</th>'
        + "".join(_cell(latest.get((entry, kind)), entry, kind) for kind in kinds)
        + "</tr>"
        for entry in entries
    )
    flagged = [r for r in found if r["regressions"]]
    regressions = (
        "<table><tr><th>record</th><th>check</th><th>baseline</th><th>now</th><th>limit</th>"
        "</tr>"
        + "".join(
            f'<tr><td><a href="#{_e(r["id"])}">{_e(r["id"])}</a></td><td>{_e(f["check"])}</td>'
            f"<td>{_e(f.get('baseline'))}</td><td>{_e(f.get('value'))}</td>"
            f"<td>{_e(f.get('limit'))}</td></tr>"
            for r in flagged
            for f in r["regressions"]
        )
        + "</table>"
        if flagged
        else "<p>none</p>"
    )
    sections = "\n".join(
        _record_section(r) for r in sorted(found, key=lambda r: r["finished"], reverse=True)
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p>{len(found)} records. Each cell is the latest record of an entry on a kind of host; records
are made by <code>envkit verify</code> (docs/records.md).</p>
<h2>Entries and hosts</h2>
<table id="grid"><tr><th>entry</th>{head}</tr>
{body}
</table>
<h2>Regressions</h2>
{regressions}
<h2>Records</h2>
{sections}
</body></html>
"""


def write_report(found: list[dict], out_dir: Path, title: str = "envkit validation records"):
    """Write out_dir/index.html; returns its path."""
    return records.write_atomic(Path(out_dir) / "index.html", render(found, title))
