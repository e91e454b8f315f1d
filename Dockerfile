# Two stages: the wheel is built where a C compiler is (the package build compiles the
# forwarding path's C, sfu/fastpath.c, into sfu._fastpath), and installed where none is.
FROM python:3.11-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev linux-libc-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY sfu sfu
COPY signalling signalling
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
# media uses UDP on ephemeral ports: run with --network host, and set the address
# browsers reach with SFU_MEDIA_ICE_ADDRESSES
ENV SFU_SERVER_HOST=0.0.0.0
EXPOSE 7880
ENTRYPOINT ["classroom-sfu"]
CMD ["serve"]
