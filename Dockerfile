# Cachalot's image. The build stage installs with the same scripts/install-deps.sh that the
# README commands and CI use, so what CI proves holds for the image.
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh build
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCACHALOT_TESTS=OFF \
 && cmake --build /build \
 && cmake --install /build --prefix /opt/cachalot

FROM debian:12-slim
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh runtime && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
 && useradd --system --no-create-home --uid 10001 cachalot
COPY --from=build /opt/cachalot/bin/cachalot /opt/cachalot/bin/cachalot-demo-origin /usr/local/bin/
# The configuration is read from here: mount yours over it.
COPY config/cachalot.yaml /etc/cachalot/cachalot.yaml
USER cachalot
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cachalot"]
CMD ["--config", "/etc/cachalot/cachalot.yaml"]
