# roxd: one static binary on a distroless base, running as a non-root user.
#
#   docker build -t roxd .
#   docker run --rm roxd help
#
# docker-compose.yml runs it next to Redis and the ROX simulator.

FROM golang:1.26 AS build
WORKDIR /src
# Dependencies first, so that a code change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/roxd ./cmd/roxd \
 && mkdir -p /out/spool /out/journal

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/roxd /roxd
# The callback spool (ROXD_SPOOL_DIR) must be writable by the non-root user;
# mount a volume here so that spooled callbacks survive a restart.
COPY --from=build --chown=65532:65532 /out/spool /var/lib/roxd/spool
# The worker's journal of ROX answers Redis refused (ROXD_JOURNAL_DIR): the
# same, one volume per worker container, never shared.
COPY --from=build --chown=65532:65532 /out/journal /var/lib/roxd/journal
ENV ROXD_HTTP_ADDR=0.0.0.0:8080 \
    ROXD_CALLBACK_ADDR=0.0.0.0:8081 \
    ROXD_SPOOL_DIR=/var/lib/roxd/spool \
    ROXD_JOURNAL_DIR=/var/lib/roxd/journal
USER 65532:65532
# 8080: API, /metrics, /healthz, /readyz, /monitor (internal: do not expose
# to the internet). 8081: the ROX callback receiver (ROX must reach it).
EXPOSE 8080 8081
ENTRYPOINT ["/roxd"]
CMD ["serve"]
