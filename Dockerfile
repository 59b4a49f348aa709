# The one image of Monaco's API and operator: `serve` (the default) or `operator`.
#
#   docker build --build-arg VERSION=0.1.0 -t monaco .      the service with Python (the Helm chart's image)
#   docker build --build-arg VERSION=0.1.0 --target all -t monaco:all .
#                                                          the same plus Java 17, gcc and g++, for the local back end
#   docker run -p 8080:8080 --cap-drop ALL --security-opt no-new-privileges --security-opt seccomp=unconfined monaco
#
# VERSION is pyproject.toml's `version` (the Makefile's `image` target passes it). The local back end's
# sandbox here is the user-namespace one (MONACO_SANDBOX=unshare, as uid 65532, no capabilities): Docker's
# default seccomp profile refuses user namespaces, hence seccomp=unconfined; without it `monaco serve`
# exits at once saying so. README.md's "Run the image" has the why.
#
# On the e2e machines there is no Docker: e2e/images/build.sh builds the `monaco` stage from a Debian root
# fs and reads its settings (ENV, USER, WORKDIR, EXPOSE, LABEL, ENTRYPOINT, CMD, HEALTHCHECK) and its RUN
# step from this file (e2e/images/dockerfile.py); tests/test_image.py checks that nothing else differs.
ARG VERSION=0.0.0

FROM python:3.11-slim AS build
# Installing Monaco compiles its native binaries (core/native.py): nsrun with gcc, and the static
# monaco-init with musl-gcc. Here, at build time: nothing is ever compiled when the image starts.
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
 && test -x /install/lib/python3.11/site-packages/monaco/core/bin/monaco-init

FROM python:3.11-slim AS monaco
ARG VERSION
COPY --from=build /install /usr/local
# The service's user and its data dir (the SQLite queue and the sandboxes' dirs; never under /tmp, which
# every sandbox covers with a tmpfs of its own).
RUN echo 'monaco:x:65532:65532:monaco:/var/lib/monaco:/usr/sbin/nologin' >>/etc/passwd \
 && echo 'monaco:x:65532:' >>/etc/group \
 && install -d -o 65532 -g 65532 -m 0700 /var/lib/monaco
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/var/lib/monaco \
    MONACO_HOST=0.0.0.0 \
    MONACO_DATA_DIR=/var/lib/monaco \
    MONACO_SANDBOX=unshare
LABEL org.opencontainers.image.title="monaco" \
      org.opencontainers.image.description="Monaco runs untrusted programs over HTTP: the API (embedded local back end or Kubernetes) and the operator" \
      org.opencontainers.image.source="https://github.com/monaco-dev/monaco" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
USER 65532:65532
WORKDIR /var/lib/monaco
EXPOSE 8080 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % (os.environ.get('PORT') or os.environ.get('MONACO_PORT') or '8080'), timeout=4)"]
ENTRYPOINT ["python3", "-m", "monaco.cli"]
CMD ["serve"]

# The all-in-one image: the `monaco` stage plus the toolchains of the four built-in languages, so that the
# local back end runs Java, C and C++ too (GET /languages lists what an image can run).
FROM monaco AS all
USER 0:0
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc g++ libc6-dev openjdk-17-jdk-headless \
 && rm -rf /var/lib/apt/lists/*
USER 65532:65532

# The default target (`docker build .` builds the last stage): the service with Python only.
FROM monaco
