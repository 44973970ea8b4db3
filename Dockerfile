# Build: a static binary (no build tags).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/vigil ./cmd/vigil

# Run: a small image, non-root, data under /var/lib/vigil.
FROM alpine:3.20
RUN addgroup -S -g 10001 vigil && adduser -S -u 10001 -G vigil -h /var/lib/vigil vigil \
    && mkdir -p /var/lib/vigil /etc/vigil && chown vigil:vigil /var/lib/vigil
COPY --from=build /out/vigil /usr/local/bin/vigil
USER 10001:10001
WORKDIR /var/lib/vigil
EXPOSE 9090
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD wget -q -O /dev/null http://127.0.0.1:9090/health || exit 1
ENTRYPOINT ["/usr/local/bin/vigil"]
CMD ["--config", "/etc/vigil/vigil.yaml"]
