# syntax=docker/dockerfile:1
#
# The MCP gateway as a small, non-root container image.
#
#   docker build -t mcp-gateway .
#   docker run --rm -p 8080:8080 mcp-gateway                  # embedded demo (stdio demo servers)
#   docker run --rm -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/gateway.yaml:/etc/mcp-gateway/gateway.yaml:ro" \
#     -e MCP_GATEWAY_CONFIG=/etc/mcp-gateway/gateway.yaml \
#     -e MCP_GATEWAY_REDIS_URL=redis://redis:6379/0 mcp-gateway
#
# In a container the gateway binds ALL interfaces (`serve --host 0.0.0.0`, the default command):
# published ports are its only way in. Loopback-only DNS-rebinding protection does not apply then,
# so list the names clients use in `allowed_hosts` (and browser origins in `allowed_origins`).
# Configuration comes from the YAML file named by MCP_GATEWAY_CONFIG (unset = the embedded demo);
# MCP_GATEWAY_REDIS_URL and MCP_GATEWAY_PORT win over the file. `--host` on the command line wins
# over MCP_GATEWAY_HOST; override the command to change it.
#
# Ports: 8080 MCP (/mcp, /ws) and /health*, 9090 gateway metrics, 8445 MCPB/TCP bridge
# (`mcp-gateway bridge`, same image), 9092 bridge metrics.
#
# Build argument EXTRAS: package extras to install. The default `demo` includes the MCP SDK the
# embedded demo servers need; `--build-arg EXTRAS=` builds a gateway-only image for deployments
# that always set MCP_GATEWAY_CONFIG.

# ---- builder: build the wheel and install it with its dependencies into /opt/venv ------------
FROM python:3.11.14-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# A virtual environment without pip: the runtime image gets the gateway and its dependencies,
# not the installer. The builder's pip installs into it (`pip --python`).
RUN python -m venv --without-pip /opt/venv

COPY pyproject.toml README.md ./
COPY app ./app

ARG EXTRAS=demo
# The dependencies install from binary wheels (uvloop, httptools, orjson, pydantic-core, ...;
# checked for linux/amd64), so the slim builder needs no compiler; a dependency without a wheel
# for the target platform fails here, loudly, rather than pulling a toolchain in.
RUN python -m pip --python /opt/venv/bin/python install --no-cache-dir ".${EXTRAS:+[${EXTRAS}]}" \
    && /opt/venv/bin/mcp-gateway --version

# ---- runtime: the interpreter from the same base image plus the venv, nothing else -----------
FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="mcp-gateway" \
      org.opencontainers.image.description="MCP gateway: Streamable HTTP and WebSocket in front of many MCP servers" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH="/opt/venv/bin:${PATH}"

# A system user with a fixed uid (for runAsNonRoot / ECS `user`), no home and no login shell.
# The base image's own pip/setuptools/wheel are not needed at run time: remove them.
RUN groupadd --system --gid 10001 mcp \
    && useradd --system --uid 10001 --gid mcp --no-log-init --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin mcp \
    && python -m pip uninstall --yes --quiet pip setuptools wheel \
    && rm -rf /root/.cache

COPY --from=builder /opt/venv /opt/venv

# Relative paths in a mounted configuration resolve here; the gateway itself writes nothing.
WORKDIR /etc/mcp-gateway

USER 10001:10001

EXPOSE 8080 9090 8445 9092

# Liveness only (/healthz); /readyz says when backends are discovered. No curl in the image:
# python's urllib, with proxies disabled so an HTTP(S)_PROXY in the environment cannot interfere.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:%s/healthz' % os.environ.get('MCP_GATEWAY_PORT', '8080'), timeout=4)"]

ENTRYPOINT ["mcp-gateway"]
CMD ["serve", "--host", "0.0.0.0"]
