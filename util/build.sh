#!/usr/bin/env bash
# Build nginx with nginx-rtmp-module and the FishChat suite into build/.
#
#   util/build.sh            static modules: build/nginx/sbin/nginx
#   util/build.sh dynamic    the suite as dynamic modules against the same
#                            nginx: build/dynamic/sbin/nginx + modules/*.so
#   util/build.sh release    static, without --with-debug: what the debug
#                            build costs is measured against it
#                            (bench/README.md); build/release/sbin/nginx
#
# Sources: NGINX_SRC / RTMP_SRC may name an unpacked tree or a tarball of
# your own; otherwise the pristine upstream tarballs are downloaded from
# Debian's source archive (private apt configuration, sha256 checked).
# A rebuild after a source change only runs make; configure runs again when
# its arguments or the suite's `config` change.

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
FC_TOP=$top
. "$top/util/apt-private.sh"

mode=${1:-static}
build="$top/build"
srcdir="$build/src"
mkdir -p "$srcdir"

NGINX_VERSION=1.26.3
NGINX_DEB="nginx=$NGINX_VERSION-*"
NGINX_TGZ=nginx_1.26.3.orig.tar.gz
NGINX_SHA=69ee2b237744036e61d24b836668aad3040dda461fe6f570f1787eab570c75aa
RTMP_DEB=libnginx-mod-rtmp=1:1.2.2+dfsg-6
RTMP_TXZ=libnginx-mod-rtmp_1.2.2+dfsg.orig.tar.xz
RTMP_SHA=6531e5ed75b01dfe786e08e0eb8ffd664b6f271f3e57223fe59dba965fcefd84

sha_ok() {
    [ -f "$1" ] && echo "$2  $1" | sha256sum -c --status
}

# fetch PKG=VERSION FILE SHA256: the orig tarball from Debian's archive
fetch() {
    local spec=$1 file=$2 sum=$3
    if sha_ok "$srcdir/$file" "$sum"; then
        return 0
    fi
    if [ -z "${FC_APT_DIR:-}" ]; then
        apt_private_init trixie-src \
            "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(apt_mirror) trixie main"
    fi
    if [ "${spec%-\*}" != "$spec" ]; then
        # the Debian revision changes with security updates: take the one
        # the archive has now (same upstream tarball, same checksum)
        local pkg=${spec%%=*} up=${spec#*=}
        up=${up%-\*}
        spec="$pkg=$(apt-cache "${FC_APT_OPTS[@]}" showsrc "$pkg" 2>/dev/null \
            | awk -v u="$up-" '$1 == "Version:" && index($2, u) == 1 \
                               { print $2; exit }')"
    fi
    echo "build: downloading $file"
    # the .dsc or .debian.tar.xz may answer 404 while the orig tarball is
    # already saved: judge by the checksum, not by apt-get's exit code
    (cd "$srcdir" && apt_private source --download-only "$spec" \
        >/dev/null 2>&1) || true
    if ! sha_ok "$srcdir/$file" "$sum"; then
        echo "build: $file missing or sha256 mismatch" >&2
        exit 1
    fi
}

# unpack TARBALL DIR
unpack() {
    local tarball=$1 dir=$2 tmp
    if [ -d "$dir" ]; then
        return 0
    fi
    tmp=$(mktemp -d "$srcdir/unpack.XXXXXX")
    tar -xf "$tarball" -C "$tmp"
    mv "$tmp"/* "$dir"
    rmdir "$tmp"
}

if [ -n "${NGINX_SRC:-}" ] && [ -d "$NGINX_SRC" ]; then
    nginx_src=$(cd "$NGINX_SRC" && pwd)
elif [ -n "${NGINX_SRC:-}" ]; then
    nginx_src="$srcdir/nginx-custom"
    unpack "$NGINX_SRC" "$nginx_src"
else
    fetch "$NGINX_DEB" "$NGINX_TGZ" "$NGINX_SHA"
    nginx_src="$srcdir/nginx-$NGINX_VERSION"
    unpack "$srcdir/$NGINX_TGZ" "$nginx_src"
fi

if [ -n "${RTMP_SRC:-}" ] && [ -d "$RTMP_SRC" ]; then
    rtmp_src=$(cd "$RTMP_SRC" && pwd)
elif [ -n "${RTMP_SRC:-}" ]; then
    rtmp_src="$srcdir/rtmp-custom"
    unpack "$RTMP_SRC" "$rtmp_src"
else
    fetch "$RTMP_DEB" "$RTMP_TXZ" "$RTMP_SHA"
    rtmp_src="$srcdir/nginx-rtmp-module-1.2.2"
    unpack "$srcdir/$RTMP_TXZ" "$rtmp_src"
fi

common=(--with-stream --with-stream_ssl_module --with-http_ssl_module
        --with-threads --with-debug
        --add-module="$rtmp_src")

# the same without --with-debug (util/build.sh release)
release=(--with-stream --with-stream_ssl_module --with-http_ssl_module
         --with-threads --add-module="$rtmp_src")

case "$mode" in
static)
    prefix="$build/nginx"
    objs="$build/objs-static"
    args=(--prefix="$prefix" --builddir="$objs" "${common[@]}"
          --add-module="$top")
    ;;
dynamic)
    prefix="$build/dynamic"
    objs="$build/objs-dynamic"
    args=(--prefix="$prefix" --builddir="$objs" "${common[@]}"
          --add-dynamic-module="$top")
    ;;
release)
    prefix="$build/release"
    objs="$build/objs-release"
    args=(--prefix="$prefix" --builddir="$objs" "${release[@]}"
          --add-module="$top")
    ;;
*)
    echo "usage: $0 [static|dynamic|release]" >&2
    exit 2
    ;;
esac

stamp="$objs/.fishchat-configure"
want=$(printf '%s\n' "$nginx_src" "${args[@]}" "${FC_CC_OPT:-}" \
       | cat - "$top/config" "$top/config.make" | sha256sum | cut -d' ' -f1)

if [ ! -f "$objs/Makefile" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]
then
    echo "build: configure ($mode)"
    (cd "$nginx_src" && ./configure "${args[@]}" \
        --with-cc-opt="-O2 -g ${FC_CC_OPT:-}" >"$build/configure-$mode.log" 2>&1) \
        || { tail -30 "$build/configure-$mode.log"; exit 1; }
    echo "$want" > "$stamp"
fi

echo "build: make ($mode)"
(cd "$nginx_src" && make -j"$(nproc)" -f "$objs/Makefile" >"$build/make-$mode.log" 2>&1) \
    || { grep -E -A4 '(error|warning):' "$build/make-$mode.log" | head -60; exit 1; }
(cd "$nginx_src" && make -f "$objs/Makefile" install >/dev/null)
echo "build: $prefix/sbin/nginx ready"
