FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY sfu sfu
COPY signalling signalling
COPY events events
COPY whiteboard whiteboard
COPY classroom classroom
COPY recorder recorder
COPY scheduler_bridge scheduler_bridge
COPY benches benches
# the compiled send step of the forwarding path (sfu/fastpath_build.py), built into the
# installed package; gcc is removed again afterwards
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
 && pip install --no-cache-dir . \
 && cd / && python -m sfu.fastpath_build "$(python -c 'import sfu, os; print(os.path.dirname(sfu.__file__))')" \
 && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
# media uses UDP on ephemeral ports: run with --network host, and set the address
# browsers reach with SFU_MEDIA_ICE_ADDRESSES
ENV SFU_SERVER_HOST=0.0.0.0
EXPOSE 7880
ENTRYPOINT ["classroom-sfu"]
CMD ["serve"]
