#!/usr/bin/env python3
"""The Helm oracle of tests/it/helm_values.rs: render a chart offline with Helm's Go SDK
(PyPI helm-python-sdk) and print {template path: manifest} as JSON.

stdin: {"chart": DIR, "values": {...}, "set": ["a.b=1", ...], "setString": [...],
        "name": RELEASE, "namespace": NS}. Values are layered as Argo CD and Flux do: the
values object first, then each --set (parameters), then each --set-string (forceString).
"""
import json
import sys

import helm_python as helm


def merge(into, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = v
    return into


def main():
    req = json.load(sys.stdin)
    values = req.get("values") or {}
    for expr in req.get("set", []):
        merge(values, helm.parse_set_string(expr))
    for expr in req.get("setString", []):
        merge(values, helm.parse_set_string_values(expr))
    with helm.Chart.load(req["chart"]) as chart:
        out = chart.render(
            values=values,
            name=req.get("name", "release"),
            namespace=req.get("namespace", "default"),
        )
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
