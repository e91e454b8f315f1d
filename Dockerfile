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
RUN pip install --no-cache-dir .
# media uses UDP on ephemeral ports: run with --network host, and set the address
# browsers reach with SFU_MEDIA_ICE_ADDRESSES
ENV SFU_SERVER_HOST=0.0.0.0
EXPOSE 7880
ENTRYPOINT ["classroom-sfu"]
CMD ["serve"]
