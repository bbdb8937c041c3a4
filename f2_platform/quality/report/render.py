"""Writes a report: the HTML page (charts embedded, nothing fetched from anywhere) and its JSON sidecar."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from f2_platform.quality.report.charts import EVENT_CHARTS, render_charts

TEMPLATES = Path(__file__).parent / "templates"
MAX_TABLE_ROWS = 200


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    json: Path


def base_name(report: dict[str, Any]) -> str:
    name = f"data-quality-{report['day']}"
    controllers = report["scope"]["controllers"]
    if controllers:
        name += "-" + "-".join(controllers) if len(controllers) <= 3 else f"-{len(controllers)}-controllers"
    return name


def render_html(report: dict[str, Any], sidecar_name: str) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))
    template = env.get_template("data_quality.html.j2")
    return template.render(
        r=report,
        charts=render_charts(report),
        event_charts=list(EVENT_CHARTS),
        sidecar=sidecar_name,
        max_rows=MAX_TABLE_ROWS,
    )


def _write_atomically(path: Path, text: str) -> None:
    # A reader (the UI, a browser) never sees half a file; a rerun replaces the previous report whole.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(report: dict[str, Any], directory: Path) -> ReportFiles:
    directory.mkdir(parents=True, exist_ok=True)
    name = base_name(report)
    json_path, html_path = directory / f"{name}.json", directory / f"{name}.html"
    _write_atomically(json_path, json.dumps(report, indent=2, sort_keys=False) + "\n")
    _write_atomically(html_path, render_html(report, json_path.name))
    return ReportFiles(html=html_path, json=json_path)
