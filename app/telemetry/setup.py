"""Telemetry set up once per process: providers, readers, exporters, the scrape endpoint, shutdown.

Configuration is the standard `OTEL_*` environment first (service name, resource attributes,
sampler, OTLP endpoint/protocol/headers, intervals), then the arguments (the gateway passes its
config: metrics port, user-label mode, certificate files):

- Metrics: the OTel Prometheus reader, served on `metrics_host:metrics_port` (`/metrics`; 0 turns
  it off), and OTLP through a periodic reader when OTLP export is on. Both can run at once.
- Traces: a parent-based ratio sampler (`OTEL_TRACES_SAMPLER_ARG`, default 1.0: the Collector
  samples by tail) unless `OTEL_TRACES_SAMPLER` names another; batched OTLP export. With no
  trace exporter, only callers' sampled traces are recorded (nothing would read the rest).
- Logs: JSON lines on stderr always (app.telemetry.logs); OTLP log records as well when OTLP export is on.
- OTLP export is on for a signal when `OTEL_<SIGNAL>_EXPORTER` says `otlp` (or `console`), or,
  when that is unset, when an OTLP endpoint is configured (`OTEL_EXPORTER_OTLP_ENDPOINT` or the
  signal's own). Protocol: `OTEL_EXPORTER_OTLP_[<SIGNAL>_]PROTOCOL`, `grpc` or `http/protobuf`
  (the default, as the specification says).
- `OTEL_SDK_DISABLED=true`: everything is a no-op (no scrape endpoint either); the incoming trace
  context is still passed on to backends.

`Telemetry.shutdown()` flushes spans, a final metrics export and log records within a deadline:
platforms freeze or kill idle instances, so nothing may wait for the next export interval.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import metrics, trace

from app import __version__
from app.telemetry import state
from app.telemetry.instruments import Instruments
from app.telemetry.labels import DEFAULT_USER_LABEL, UserLabelMode

log = logging.getLogger("mcp_gateway.telemetry")

SIGNALS = ("traces", "metrics", "logs")
DEFAULT_PROTOCOL = "http/protobuf"
DEFAULT_SHUTDOWN_SECONDS = 5.0


class TelemetryError(Exception):
    """Telemetry cannot start as configured (the message says what to change)."""


@dataclass
class Telemetry:
    """What `setup` built. `instruments` and `tracer` are what the process records with."""

    service_name: str
    enabled: bool
    instruments: Instruments
    tracer: trace.Tracer
    #: (host, port) the Prometheus scrape endpoint listens on, or None.
    metrics_address: tuple[str, int] | None = None
    #: Signal -> exporters in use ("otlp/grpc", "otlp/http/protobuf", "console").
    exporters: dict[str, list[str]] = field(default_factory=dict)
    tracer_provider: Any = None
    meter_provider: Any = None
    logger_provider: Any = None
    _log_handler: logging.Handler | None = None
    _http_server: Any = None
    #: Seconds `shutdown()` may take unless told otherwise.
    flush_timeout: float = DEFAULT_SHUTDOWN_SECONDS
    _closed: bool = False

    def force_flush(self, timeout_seconds: float = DEFAULT_SHUTDOWN_SECONDS) -> bool:
        """Export what is buffered now; True when everything went out in time."""
        if not self.enabled:
            return True
        deadline = time.monotonic() + timeout_seconds
        ok = True
        for provider in (self.tracer_provider, self.meter_provider, self.logger_provider):
            if provider is not None:
                left = max(0.0, deadline - time.monotonic())
                ok = bool(provider.force_flush(int(left * 1000))) and ok
        return ok

    def shutdown(self, timeout_seconds: float | None = None) -> bool:
        """Flush and stop everything, within `timeout_seconds` (default `flush_timeout`) in total.
        Idempotent. Spans first, then the final metrics export, then log records (so the
        shutdown's own lines go out)."""
        timeout_seconds = self.flush_timeout if timeout_seconds is None else timeout_seconds
        if self._closed:
            return True
        self._closed = True
        if not self.enabled:
            return True
        steps: list[Callable[[], object]] = []
        if self.tracer_provider is not None:
            steps.append(self.tracer_provider.shutdown)
        if self.meter_provider is not None:
            steps.append(lambda: self.meter_provider.shutdown(timeout_millis=timeout_seconds * 1000))
        if self.logger_provider is not None:
            steps.append(self.logger_provider.shutdown)
        done = _run_with_deadline(steps, timeout_seconds)
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
        if self._http_server is not None:
            self._http_server.shutdown()
            self._http_server.server_close()
        if not done:
            log.warning("telemetry flush did not finish within %.1f s", timeout_seconds)
        return done


def _run_with_deadline(steps: Sequence[Callable[[], object]], timeout: float) -> bool:
    """Run `steps` in order on a helper thread; give up waiting after `timeout` (an exporter stuck
    retrying an unreachable Collector must not hold the process past its drain budget)."""
    finished = threading.Event()

    def run() -> None:
        try:
            for step in steps:
                try:
                    step()
                except Exception:
                    log.warning("telemetry shutdown step failed", exc_info=True)
        finally:
            finished.set()

    threading.Thread(target=run, name="telemetry-shutdown", daemon=True).start()
    return finished.wait(timeout)


# -- configuration from the environment ------------------------------------------------------------
def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def sdk_disabled() -> bool:
    return _env("OTEL_SDK_DISABLED").lower() == "true"


def exporters_for(signal: str) -> list[str]:
    """`otlp`/`console` exporters wanted for a signal (`none` and unknown names dropped)."""
    configured = _env(f"OTEL_{signal.upper()}_EXPORTER")
    if not configured:
        endpoint = _env("OTEL_EXPORTER_OTLP_ENDPOINT") or _env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
        return ["otlp"] if endpoint else []
    names = [name.strip().lower() for name in configured.split(",") if name.strip()]
    unknown = [n for n in names if n not in ("otlp", "console", "none", "prometheus")]
    if unknown:
        log.warning("OTEL_%s_EXPORTER: ignoring unsupported exporter(s) %s", signal.upper(), ", ".join(unknown))
    # `prometheus` for metrics is the scrape endpoint, configured by the metrics port.
    return [n for n in names if n in ("otlp", "console")]


def protocol_for(signal: str) -> str:
    protocol = _env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL") or _env("OTEL_EXPORTER_OTLP_PROTOCOL") or DEFAULT_PROTOCOL
    if protocol not in ("grpc", "http/protobuf"):
        raise TelemetryError(f"OTLP protocol {protocol!r} is not supported for {signal}: use grpc or http/protobuf")
    return protocol


#: The OTLP exporter class of each (protocol, signal), as (module, class name).
_OTLP_EXPORTERS = {
    ("grpc", "traces"): ("opentelemetry.exporter.otlp.proto.grpc.trace_exporter", "OTLPSpanExporter"),
    ("grpc", "metrics"): ("opentelemetry.exporter.otlp.proto.grpc.metric_exporter", "OTLPMetricExporter"),
    ("grpc", "logs"): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    ("http/protobuf", "traces"): ("opentelemetry.exporter.otlp.proto.http.trace_exporter", "OTLPSpanExporter"),
    ("http/protobuf", "metrics"): ("opentelemetry.exporter.otlp.proto.http.metric_exporter", "OTLPMetricExporter"),
    ("http/protobuf", "logs"): ("opentelemetry.exporter.otlp.proto.http._log_exporter", "OTLPLogExporter"),
}


def _otlp_exporter(signal: str) -> tuple[Any, str]:
    """The OTLP exporter of a signal; it reads its endpoint, headers, timeout, compression and
    certificates from the standard variables itself. Imported here: gRPC is slow to import and
    only needed when configured."""
    protocol = protocol_for(signal)
    module, name = _OTLP_EXPORTERS[(protocol, signal)]
    exporter = getattr(importlib.import_module(module), name)
    return exporter(), f"otlp/{protocol}"


def _console_exporter(signal: str) -> Any:
    if signal == "traces":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if signal == "metrics":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter()
    from opentelemetry.sdk._logs.export import ConsoleLogRecordExporter

    return ConsoleLogRecordExporter()


def _sampler(exporting: bool) -> Any:
    """`OTEL_TRACES_SAMPLER` when set (the SDK parses it); else parent-based ratio when spans are
    exported. When nothing exports them, only a caller's sampled trace is recorded (so its
    backends still see it sampled); the gateway's own roots get cheap non-recording spans, which
    still carry trace and span ids to the logs and to the backends."""
    from opentelemetry.sdk.trace import sampling

    if _env("OTEL_TRACES_SAMPLER"):
        return None  # TracerProvider reads OTEL_TRACES_SAMPLER / _ARG itself.
    try:
        ratio = float(_env("OTEL_TRACES_SAMPLER_ARG") or 1.0)
    except ValueError:
        raise TelemetryError(f"OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1, not {_env('OTEL_TRACES_SAMPLER_ARG')!r}") from None
    if not 0.0 <= ratio <= 1.0:
        raise TelemetryError(f"OTEL_TRACES_SAMPLER_ARG must be from 0 to 1, not {ratio}")
    return sampling.ParentBasedTraceIdRatio(ratio) if exporting else sampling.ParentBased(sampling.ALWAYS_OFF)


def _exemplar_filter() -> Any:
    """`OTEL_METRICS_EXEMPLAR_FILTER` when set (the SDK parses it); else none: exemplars cost a
    few microseconds per measurement and neither the scrape endpoint nor the remote-write path
    in otel/ uses them. Set `trace_based` to have OTLP metrics point at sample traces."""
    if _env("OTEL_METRICS_EXEMPLAR_FILTER"):
        return None
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

    return AlwaysOffExemplarFilter()


def _resource(service_name: str, service_version: str) -> Any:
    """Our defaults (service.name, service.version), overridden by OTEL_SERVICE_NAME and
    OTEL_RESOURCE_ATTRIBUTES; the SDK adds telemetry.sdk.* and a unique service.instance.id
    (which keeps replicas apart after the Collector's remote write: it becomes `instance`)."""
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    environment = OTELResourceDetector().detect().attributes
    return Resource.create({"service.name": service_name, "service.version": service_version, **environment})


# -- setup -----------------------------------------------------------------------------------------
def setup(
    service_name: str = "mcp-gateway",
    *,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    user_label: UserLabelMode = DEFAULT_USER_LABEL,
    certificate_files: Sequence[str | Path] = (),
    service_version: str = __version__,
    flush_timeout: float = DEFAULT_SHUTDOWN_SECONDS,
    install: bool = True,
) -> Telemetry:
    """Build the process's telemetry. `install` (the default) makes it the process's: the global
    OpenTelemetry providers and what `app.telemetry.current_instruments()`/`tracer()` return. Raises
    TelemetryError when it cannot start (the metrics port is taken, a bad OTEL_* value)."""
    if sdk_disabled():
        disabled = Telemetry(service_name, False, state.disabled_instruments(user_label), trace.NoOpTracer(), flush_timeout=flush_timeout)
        if install:
            state.install(disabled.instruments, None)
        log.info("telemetry disabled (OTEL_SDK_DISABLED=true)")
        return disabled

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        MetricReader,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = _resource(service_name, service_version)
    used: dict[str, list[str]] = {signal: [] for signal in SIGNALS}

    readers: list[MetricReader] = []
    registry = None
    if metrics_port:
        registry, reader = _prometheus_reader()
        readers.append(reader)
        used["metrics"].append("prometheus")
    for name in exporters_for("metrics"):
        exporter, label = _otlp_exporter("metrics") if name == "otlp" else (_console_exporter("metrics"), "console")
        readers.append(PeriodicExportingMetricReader(exporter))
        used["metrics"].append(label)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers, shutdown_on_exit=False, exemplar_filter=_exemplar_filter())

    trace_exporters = exporters_for("traces")
    tracer_provider = TracerProvider(resource=resource, sampler=_sampler(bool(trace_exporters)), shutdown_on_exit=False)
    for name in trace_exporters:
        exporter, label = _otlp_exporter("traces") if name == "otlp" else (_console_exporter("traces"), "console")
        tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
        used["traces"].append(label)

    logger_provider, log_handler = _log_export(resource, used)

    instruments = Instruments(meter_provider.get_meter(state.SCOPE, service_version), user_label)
    instruments.watch_certificates(certificate_files)
    tracer = tracer_provider.get_tracer(state.SCOPE, service_version)
    telemetry = Telemetry(
        service_name,
        True,
        instruments,
        tracer,
        None,
        used,
        tracer_provider,
        meter_provider,
        logger_provider,
        log_handler,
        flush_timeout=flush_timeout,
    )
    if metrics_port:
        try:
            telemetry._http_server = _serve_metrics(registry, metrics_host, metrics_port)
        except OSError as exc:
            telemetry.shutdown(1.0)
            raise TelemetryError(
                f"cannot serve metrics on {metrics_host}:{metrics_port} ({exc.strerror or exc}); "
                "choose another port with --metrics-port or MCP_GATEWAY_METRICS_PORT (0 turns the endpoint off)"
            ) from None
        telemetry.metrics_address = (metrics_host, telemetry._http_server.server_port)
    if install:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
        if logger_provider is not None:
            from opentelemetry import _logs

            _logs.set_logger_provider(logger_provider)
        if log_handler is not None:
            logging.getLogger().addHandler(log_handler)
        state.install(instruments, tracer)
        # One shutdown path, bounded by `flush_timeout` (the providers' own exit hooks are off):
        # a process that ends without calling shutdown() still flushes on its way out.
        atexit.register(telemetry.shutdown)
    log.info(
        "telemetry ready",
        extra={
            "metrics_endpoint": f"{metrics_host}:{telemetry.metrics_address[1]}" if telemetry.metrics_address else None,
            "exporters": {signal: names for signal, names in used.items() if names},
        },
    )
    return telemetry


def _prometheus_reader() -> tuple[Any, Any]:
    """The OTel Prometheus reader on a registry of its own: only our instruments appear (no
    client-library default collectors), without `otel_scope_*` labels on every series; the
    `target_info` series carries the resource."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import (
        CollectorRegistry,  # The reader's own library, for its registry.
    )

    registry = CollectorRegistry(auto_describe=True)
    return registry, PrometheusMetricReader(scope_info_enabled=False, registry=registry)


def _serve_metrics(registry: Any, host: str, port: int) -> Any:
    """Serve the reader's registry in the Prometheus text format (OpenMetrics when asked) on a
    daemon thread, as the OTel Prometheus exporter documents."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server


def _log_export(resource: Any, used: dict[str, list[str]]) -> tuple[Any, logging.Handler | None]:
    names = exporters_for("logs")
    if not names:
        return None, None
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    from app.telemetry.logs import OtlpLogHandler

    provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    for name in names:
        exporter, label = _otlp_exporter("logs") if name == "otlp" else (_console_exporter("logs"), "console")
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
        used["logs"].append(label)
    return provider, OtlpLogHandler(provider.get_logger(state.SCOPE))
