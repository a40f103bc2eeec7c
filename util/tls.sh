#!/usr/bin/env bash
# Create once, for `make run`, what conf/fishchat.conf's TLS ports and
# login tokens use:
#
#   var/tls/ca.pem, var/tls/ca.key          a private CA (10 years)
#   var/tls/server.pem, var/tls/server.key  a server certificate for
#                                           127.0.0.1 and localhost signed
#                                           by that CA (EC P-256, ~2 years)
#   var/auth.secret                         a random HS256 secret, 48 bytes
#                                           base64 on one line, mode 0600
#
# A file that exists is kept: a second run changes nothing.  Remove
# var/tls/ (or var/auth.secret) to get new ones.  Clients verify the server
# with --ca var/tls/ca.pem (util/fishchat-client, openssl s_client -CAfile).

set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
dir="$top/var/tls"
secret="$top/var/auth.secret"

command -v openssl >/dev/null || {
    echo "tls: the openssl command is missing (make deps)" >&2
    exit 1
}

mkdir -p "$dir"
umask 077

if [ ! -s "$dir/ca.pem" ] || [ ! -s "$dir/ca.key" ]; then
    echo "tls: creating the private CA $dir/ca.pem"
    rm -f "$dir/server.pem" "$dir/server.key"   # signed by an older CA
    openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key.tmp"
    openssl req -new -x509 -sha256 -days 3650 -key "$dir/ca.key.tmp" \
        -subj "/CN=FishChat private CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/ca.pem.tmp"
    mv "$dir/ca.key.tmp" "$dir/ca.key"
    mv "$dir/ca.pem.tmp" "$dir/ca.pem"
fi

if [ ! -s "$dir/server.pem" ] || [ ! -s "$dir/server.key" ]; then
    echo "tls: creating the server certificate $dir/server.pem"
    tmp=$(mktemp -d "$dir/tmp.XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    openssl ecparam -name prime256v1 -genkey -noout -out "$tmp/server.key"
    openssl req -new -sha256 -key "$tmp/server.key" -subj "/CN=localhost" \
        -out "$tmp/server.csr"
    cat > "$tmp/ext.cnf" <<'EOF'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
EOF
    openssl x509 -req -sha256 -days 825 -in "$tmp/server.csr" \
        -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
        -CAserial "$tmp/ca.srl" -extfile "$tmp/ext.cnf" \
        -out "$tmp/server.pem" 2>/dev/null
    mv "$tmp/server.key" "$dir/server.key"
    mv "$tmp/server.pem" "$dir/server.pem"
    rm -rf "$tmp"
    trap - EXIT
fi

# the certificates are public; the keys stay 0600
chmod 644 "$dir/ca.pem" "$dir/server.pem"

if [ ! -s "$secret" ]; then
    echo "tls: creating the token secret $secret"
    openssl rand -base64 48 | tr -d '\n' > "$secret.tmp"
    echo >> "$secret.tmp"
    chmod 600 "$secret.tmp"
    mv "$secret.tmp" "$secret"
fi
