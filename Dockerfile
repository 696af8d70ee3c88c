# cometa in a container: the same binary and defaults as the .deb, run as the
# unprivileged user cometa. Build and run (from the repository's root):
#
#   docker build -t cometa .
#   docker run -p 8080:8080 -v chat-data:/var/lib/chat cometa
#
# then open http://127.0.0.1:8080/. Settings as everywhere: COMETA_* variables
# (`docker run -e COMETA_HOLD=20 ...`) or a TOML file (`-e COMETA_CONFIG=...`
# with a mounted file). To share the database with a PHP app, mount the same
# folder in both containers with a common group (the image's cometa user is in
# group www-data, gid 33, as on Debian) and keep the umask 0007.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src src
COPY migrations migrations
COPY profiles profiles
COPY benches benches
# No .git in the context: the commit is passed in (--build-arg COMMIT=$(git rev-parse --short=12 HEAD)).
ARG COMMIT=unknown
ENV COMETA_GIT_COMMIT=$COMMIT
RUN cargo build --release --locked && strip target/release/cometa

FROM debian:bookworm-slim
RUN useradd --system --gid www-data --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin cometa \
    && install -d -o cometa -g www-data -m 2770 /var/lib/chat
COPY --from=build /src/target/release/cometa /usr/bin/cometa
COPY legacy_php/public/index.html legacy_php/public/chat.js legacy_php/public/chat.css \
     legacy_php/public/jquery-1.12.4.min.js /usr/share/cometa/public/
COPY LICENSE README.md CHANGELOG.md /usr/share/doc/cometa/
# The defaults of the binary, but listening on every interface of the
# container (its network namespace is the boundary) and the data in a volume.
ENV CHAT_DB=/var/lib/chat/chat.sqlite \
    COMETA_LISTEN=0.0.0.0:8080 \
    COMETA_STATIC_DIR=/usr/share/cometa/public \
    COMETA_ADMIN_LISTEN=127.0.0.1:9108 \
    COMETA_LOG_FORMAT=json
VOLUME /var/lib/chat
WORKDIR /var/lib/chat
EXPOSE 8080
USER cometa
# New files (the database, -wal, -shm) group-writable for a PHP container.
ENTRYPOINT ["/bin/sh", "-c", "umask 0007 && exec /usr/bin/cometa \"$@\"", "cometa"]
STOPSIGNAL SIGTERM
