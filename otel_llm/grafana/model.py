"""A small typed builder for Grafana dashboards on the ClickHouse datasource plugin.

Only what otel-llm's dashboards use: panels whose SQL is a named query
(:func:`otel_llm.storage.queries.panel_sql`), query and constant variables, data links
from trace ids to the plugin's trace view. :meth:`Dashboard.to_json` gives the
dashboard JSON model (schemaVersion 39) with stable uids and panel ids, so the files
regenerate byte for byte.

(grafana-foundation-sdk has no typed query for this plugin: its panels would still take
a raw dict target, so a builder of our own stays smaller.)
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Literal

from otel_llm.storage import queries

__all__ = [
    "DATASOURCE",
    "DATASOURCE_UID",
    "PLUGIN_ID",
    "Dashboard",
    "Panel",
    "Variable",
    "trace_link",
]

PLUGIN_ID = "grafana-clickhouse-datasource"
DATASOURCE_UID = "otel-llm-clickhouse"
DATASOURCE = {"type": PLUGIN_ID, "uid": DATASOURCE_UID}
DATABASE = "otel"

PanelType = Literal["timeseries", "table", "stat", "barchart", "piechart"]
# The plugin's query formats (its Format enum) and query types.
_FORMAT = {"timeseries": 0, "table": 1}


def trace_link(field_name: str = "trace_id") -> dict[str, Any]:
    """A data link opening the plugin's trace view (Explore, traces mode over
    ``otel_traces``) for the trace id in ``field_name`` of the clicked row."""
    pane = {
        "datasource": DATASOURCE_UID,
        "queries": [
            {
                "refId": "A",
                "datasource": DATASOURCE,
                "editorType": "builder",
                "queryType": "traces",
                "format": 3,
                "builderOptions": {
                    "database": DATABASE,
                    "table": "otel_traces",
                    "queryType": "traces",
                    "meta": {"isTraceIdMode": True, "traceId": f"${{__data.fields.{field_name}}}"},
                },
            }
        ],
        "range": {"from": "${__from}", "to": "${__to}"},
    }
    panes = urllib.parse.quote(json.dumps({"trace": pane}, separators=(",", ":")), safe="")
    return {"title": "Open trace", "url": f"/explore?schemaVersion=1&panes={panes}", "targetBlank": False}


@dataclass
class Variable:
    name: str
    label: str
    query: str = ""
    """SQL (dialect) of a query variable; empty for a constant or textbox."""
    kind: Literal["query", "constant", "textbox", "custom"] = "query"
    default: str = ""
    include_all: bool = True
    multi: bool = True
    options: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "label": self.label, "type": self.kind, "hide": 0}
        if self.kind == "query":
            out |= {
                "datasource": DATASOURCE,
                "definition": self.query,
                "query": self.query,
                "refresh": 2,
                "sort": 1,
                "includeAll": self.include_all,
                "multi": self.multi,
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]}
                if self.include_all
                else {},
            }
        elif self.kind == "custom":
            out |= {
                "query": ",".join(self.options),
                "current": {"selected": True, "text": self.default, "value": self.default},
                "options": [{"selected": o == self.default, "text": o, "value": o} for o in self.options],
                "includeAll": False,
                "multi": False,
            }
        else:
            out |= {
                "query": self.default,
                "current": {"text": self.default, "value": self.default},
                "hide": 2 if self.kind == "constant" else 0,
            }
        return out


@dataclass
class Panel:
    title: str
    query: str
    """A named query (otel_llm/storage/queries)."""
    type: PanelType = "table"
    unit: str = ""
    description: str = ""
    width: int = 12
    height: int = 8
    links_trace: bool = False
    """Link the trace_id column to the trace view."""
    stat_fields: tuple[str, ...] = ()
    """For stat panels: the columns shown."""
    x_field: str = ""
    """For bar charts: the category column."""
    overrides: list[dict[str, Any]] = field(default_factory=list)

    def target(self) -> dict[str, Any]:
        timeseries = self.type == "timeseries"
        return {
            "refId": "A",
            "datasource": DATASOURCE,
            "editorType": "sql",
            "format": _FORMAT["timeseries" if timeseries else "table"],
            "queryType": "timeseries" if timeseries else "table",
            "rawSql": queries.panel_sql(self.query),
            "meta": {"otel_llm_query": self.query},
        }

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {}
        if self.unit:
            defaults["unit"] = self.unit
        overrides = list(self.overrides)
        if self.links_trace:
            overrides.append(
                {
                    "matcher": {"id": "byName", "options": "trace_id"},
                    "properties": [{"id": "links", "value": [trace_link()]}],
                }
            )
            overrides.append(
                {
                    "matcher": {"id": "byName", "options": "task_id"},
                    "properties": [{"id": "links", "value": [trace_link()]}],
                }
            )
        options: dict[str, Any] = {}
        if self.type == "stat":
            options = {
                "reduceOptions": {
                    "calcs": ["lastNotNull"],
                    "fields": "/^(" + "|".join(self.stat_fields) + ")$/" if self.stat_fields else "",
                    "values": False,
                },
                "colorMode": "value",
                "graphMode": "none",
                "textMode": "value_and_name",
            }
        elif self.type == "barchart":
            options = {"xField": self.x_field, "orientation": "vertical", "showValue": "auto"}
        elif self.type == "piechart":
            options = {"reduceOptions": {"calcs": ["lastNotNull"], "values": True}, "pieType": "donut"}
        elif self.type == "table":
            options = {"showHeader": True, "cellHeight": "sm"}
        elif self.type == "timeseries":
            options = {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]}}
        return {
            "id": panel_id,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "datasource": DATASOURCE,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "targets": [self.target()],
            "fieldConfig": {"defaults": defaults, "overrides": overrides},
            "options": options,
        }


@dataclass
class Dashboard:
    uid: str
    title: str
    panels: list[Panel]
    variables: list[Variable]
    description: str = ""
    tags: tuple[str, ...] = ("otel-llm",)
    time_from: str = "now-24h"

    def to_json(self) -> dict[str, Any]:
        panels, x, y, row_height = [], 0, 0, 0
        for i, panel in enumerate(self.panels, start=1):
            if x + panel.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panels.append(panel.to_json(i, x, y))
            x += panel.width
            row_height = max(row_height, panel.height)
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "refresh": "1m",
            "time": {"from": self.time_from, "to": "now"},
            "timezone": "utc",
            "links": [
                {
                    "type": "dashboards",
                    "tags": ["otel-llm"],
                    "asDropdown": True,
                    "title": "otel-llm",
                    "includeVars": True,
                    "keepTime": True,
                }
            ],
            "templating": {"list": [v.to_json() for v in self.variables]},
            "annotations": {"list": []},
            "panels": panels,
        }
