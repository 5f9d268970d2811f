"""Grafana: dashboards and alert rules as code (on the ClickHouse datasource plugin),
the files they generate, and ``otel-llm grafana provision``.

- :mod:`~otel_llm.grafana.model`: the typed dashboard builder.
- :mod:`~otel_llm.grafana.dashboards`: otel-llm's dashboards, panel by panel, each on a
  named query (``otel_llm/storage/queries``).
- :mod:`~otel_llm.grafana.alerting`: alert rules, contact point, notification policy.
- :mod:`~otel_llm.grafana.files`: writes ``dashboards/`` and ``alerts/``
  (``otel-llm grafana generate``); the committed files are its output.
- :mod:`~otel_llm.grafana.provision`: pushes them to a running Grafana.
"""
