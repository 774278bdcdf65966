"""Operations commands: publishing the dashboards to Grafana."""

from app.ops.dashboards import (
    Grafana,
    Published,
    PublishError,
    load_dashboards,
    load_datasources,
    publish,
    register,
)

__all__ = ["Grafana", "PublishError", "Published", "load_dashboards", "load_datasources", "publish", "register"]
