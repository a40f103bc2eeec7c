#!/usr/bin/env bash
# Install what FishChat for nginx needs to build, run and test, on Debian 12.
# Only what is missing is installed; a second run does nothing.
#
# chromium and chromium-driver run the monitor's dashboard test in a
# headless browser (t/monitor.t).
#
# libjwt-dev verifies the login tokens; openssl (the command) makes the
# certificates of util/tls.sh and signs test tokens; libio-socket-ssl-perl
# lets the tests and util/fishchat-client speak TLS.
#
# libavformat-dev, libavcodec-dev and libavutil-dev: the media module
# remuxes recordings with libavformat; ffmpeg (ffmpeg and ffprobe, with
# libx264 and the aac encoder) publishes to nginx-rtmp and probes the HLS
# segments in the media tests (t/lib/Test/FishChat/Media.pm).
#
# Test::Nginx is not in Debian 12; its pure-Perl package libtest-nginx-perl
# is downloaded from Debian's development suite through a private apt
# configuration (the system's apt sources are never touched) and installed
# with dpkg after its dependencies from Debian 12.

#
# util/deps.sh PKG...: those too (the benches' own, such as mosquitto).

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/util/apt-private.sh"

pkgs="build-essential pkg-config libpcre2-dev zlib1g-dev libssl-dev
      libhiredis-dev libjansson-dev
      libavformat-dev libavcodec-dev libavutil-dev libswscale-dev ffmpeg
      redis-server redis-tools xz-utils ca-certificates curl
      libtest-base-perl libtext-diff-perl liblist-moreutils-perl
      libipc-run-perl libtest-longstring-perl liburi-perl libwww-perl
      libhttp-message-perl libencode-perl libfilter-perl
      libscalar-list-utils-perl libjson-pp-perl procps wrk
      chromium chromium-driver
      libjwt-dev libio-socket-ssl-perl openssl
      clang libclang-rt-14-dev
      $*"

missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -q 'install ok installed'
    then
        missing="$missing $p"
    fi
done

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if [ -n "$missing" ]; then
    echo "deps: installing:$missing"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends $missing
fi

if ! perl -MTest::Nginx::Socket -e 1 2>/dev/null; then
    echo "deps: installing Test::Nginx (libtest-nginx-perl from sid)"
    apt_private_init sid "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(apt_mirror) sid main"
    d="$FC_APT_DIR/debs"
    mkdir -p "$d"
    (cd "$d" && apt_private download libtest-nginx-perl)
    deb=$(ls "$d"/libtest-nginx-perl_*_all.deb | head -n 1)
    as_root dpkg -i "$deb"
    perl -MTest::Nginx::Socket -e 1
fi

echo "deps: all present"
