# Sourced by util/deps.sh and util/build.sh: a private apt configuration
# (own sources list, lists and cache under var/apt) so that packages and
# sources from other Debian suites can be downloaded without changing the
# system's apt sources.

FC_TOP=${FC_TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

# the Debian mirror the system already uses
apt_mirror() {
    local m
    m=$(grep -hoE '^URIs:[[:space:]]*[^[:space:]]+' \
            /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | awk '{print $2}' | grep -v security | head -n 1)
    if [ -z "$m" ]; then
        m=$(grep -hoE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+' \
                /etc/apt/sources.list 2>/dev/null \
            | awk '{print $NF}' | grep -v security | head -n 1)
    fi
    echo "${m%/}"
}

# apt_private_init NAME LINE...: a private configuration called NAME
apt_private_init() {
    local name=$1; shift
    FC_APT_DIR="$FC_TOP/var/apt/$name"
    mkdir -p "$FC_APT_DIR/lists/partial" "$FC_APT_DIR/cache/archives/partial"
    printf '%s\n' "$@" > "$FC_APT_DIR/sources.list"
    FC_APT_OPTS=(-o "Dir::Etc::SourceList=$FC_APT_DIR/sources.list"
                 -o "Dir::Etc::SourceParts=/dev/null"
                 -o "Dir::State::Lists=$FC_APT_DIR/lists"
                 -o "Dir::Cache=$FC_APT_DIR/cache"
                 -o "APT::Sandbox::User=root")
    apt-get "${FC_APT_OPTS[@]}" -qq update
}

apt_private() {
    apt-get "${FC_APT_OPTS[@]}" -qq "$@"
}
