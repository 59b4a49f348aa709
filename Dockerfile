# The one image of Monaco's API and operator: `serve` (the default) or `operator`.
# docker build -t monaco . && docker run -p 8080:8080 monaco
# (On the e2e machines there is no Docker: e2e/images/ builds the same image from a Debian root fs.)
FROM python:3.11-slim AS build
# Installing Monaco compiles its native binaries (core/native.py): nsrun with gcc, and the static
# monaco-init with musl-gcc.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev musl-tools \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md* ./
COPY core core
COPY api api
COPY operator operator
COPY cli cli
RUN pip install --no-cache-dir --prefix=/install . \
 && test -x /install/lib/python3.11/site-packages/monaco/api/local/bin/nsrun \
 && { [ ! -f core/monaco-init.c ] || test -x /install/lib/python3.11/site-packages/monaco/core/bin/monaco-init; }

FROM python:3.11-slim
COPY --from=build /install /usr/local
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["python3", "-m", "monaco.cli"]
CMD ["serve"]
