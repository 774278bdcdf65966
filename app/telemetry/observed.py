"""Values the observable gauges read at collection time from the system: this process's resident
memory and the expiry of watched PEM certificates (re-read when a file changes)."""

from __future__ import annotations

import logging
import os
import resource
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger("mcp_gateway.telemetry")

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_memory_bytes() -> int:
    """This process's resident set size now (Linux `/proc/self/statm`); elsewhere the peak RSS."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


class Certificates:
    """PEM certificates whose expiry is exported; each file is re-read when it changes (rotation)."""

    def __init__(self) -> None:
        self._paths: list[Path] = []
        self._cache: dict[Path, tuple[float, list[tuple[str, float]]]] = {}

    def watch(self, paths: Iterable[str | Path]) -> None:
        for path in paths:
            if Path(path) not in self._paths:
                self._paths.append(Path(path))

    def expiries(self) -> Iterator[tuple[str, float]]:
        for path in list(self._paths):
            try:
                mtime = path.stat().st_mtime
            except OSError as exc:
                log.warning("certificate file unreadable: %s", exc.strerror, extra={"path": str(path)})
                continue
            cached = self._cache.get(path)
            if cached is None or cached[0] != mtime:
                cached = (mtime, _read_certificates(path))
                self._cache[path] = cached
            yield from cached[1]


def _read_certificates(path: Path) -> list[tuple[str, float]]:
    """(subject, notAfter as unix seconds) of every certificate in a PEM file (chains included)."""
    try:
        from cryptography import x509
    except ImportError:
        log.warning("x509_cert_expiry needs the 'cryptography' package; certificate not observed", extra={"path": str(path)})
        return []
    try:
        certificates = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        log.warning("not a PEM certificate file: %s", exc, extra={"path": str(path)})
        return []
    return [(cert.subject.rfc4514_string(), cert.not_valid_after_utc.timestamp()) for cert in certificates]
