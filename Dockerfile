# Three stages: the browser page's bundles are built where Node.js is (webui/: the client
# and the whiteboard, into signalling/static/), the wheel where a C compiler is (the package
# build compiles the forwarding path's C, sfu/fastpath.c, into sfu._fastpath), and the
# wheel is installed where neither is.
FROM node:20-bookworm-slim AS webui
WORKDIR /src
COPY webui webui
COPY signalling/static signalling/static
RUN cd webui && npm ci --no-audit --no-fund && npm run build \
 && test -s ../signalling/static/client.bundle.js && test -s ../signalling/static/whiteboard.bundle.js \
 && test -s ../signalling/static/ops.bundle.js

FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev linux-libc-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY sfu sfu
COPY signalling signalling
COPY --from=webui /src/signalling/static signalling/static
COPY events events
COPY whiteboard whiteboard
COPY classroom classroom
COPY recorder recorder
COPY scheduler_bridge scheduler_bridge
COPY benches benches
RUN pip wheel --no-cache-dir --no-deps -w /wheels . \
 && python -c "import zipfile, glob, sys; names = zipfile.ZipFile(glob.glob('/wheels/*.whl')[0]).namelist(); sys.exit(not any(n.startswith('sfu/_fastpath') for n in names))"

FROM python:3.11-slim-bookworm
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# media: every participant on UDP 7882, ICE-TCP on TCP 7881 (publish both, or run with
# --network host); set the address browsers reach with SFU_MEDIA_ICE_ADDRESSES
ENV SFU_SERVER_HOST=0.0.0.0
EXPOSE 7880 7881/tcp 7882/udp
ENTRYPOINT ["classroom-sfu"]
CMD ["serve"]
