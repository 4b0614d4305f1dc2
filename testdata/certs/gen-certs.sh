#!/usr/bin/env bash
# Test certificates of the pod webhook. Committed, so tests need no generation step; run this to
# regenerate them all (they are valid for 100 years):
#
#   testdata/certs/gen-certs.sh
#
# The black-box tests also call it to issue fresh leaves for rotation tests:
#
#   testdata/certs/gen-certs.sh leaf OUT_DIR KEY_TYPE USAGE [CA_NAME]
#
# KEY_TYPE: rsa-pkcs8 | rsa-pkcs1 | ecdsa (SEC1). USAGE: server (localhost, 127.0.0.1, ::1) or
# client. CA_NAME: ca (default) or client-ca. Writes OUT_DIR/tls.crt and OUT_DIR/tls.key.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
days=36500

key() { # KEY_TYPE OUT
  case "$1" in
    rsa-pkcs8) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$2" 2>/dev/null ;;
    rsa-pkcs1) openssl genrsa -traditional -out "$2" 2048 2>/dev/null ;;
    ecdsa) openssl ecparam -name prime256v1 -genkey -noout -out "$2" ;;
    *) echo "unknown key type $1: expected rsa-pkcs8, rsa-pkcs1 or ecdsa" >&2; exit 2 ;;
  esac
}

ca() { # NAME SUBJECT
  key ecdsa "$here/$1.key"
  openssl req -x509 -new -key "$here/$1.key" -subj "/CN=$2" -days "$days" -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$here/$1.crt"
}

leaf() { # OUT_DIR KEY_TYPE USAGE [CA_NAME]
  local out="$1" type="$2" usage="$3" ca_name="${4:-ca}" ext
  mkdir -p "$out"
  ext="$(mktemp)"
  case "$usage" in
    server) printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1" \
      "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment" >"$ext" ;;
    client) printf '%s\n' "extendedKeyUsage=clientAuth" \
      "keyUsage=critical,digitalSignature,keyEncipherment" >"$ext" ;;
    *) echo "unknown usage $usage: expected server or client" >&2; exit 2 ;;
  esac
  key "$type" "$out/tls.key"
  openssl req -new -key "$out/tls.key" -subj "/CN=apiserver-proxy-$usage-$type" |
    openssl x509 -req -CA "$here/$ca_name.crt" -CAkey "$here/$ca_name.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days "$days" -sha256 -extfile "$ext" -out "$out/tls.crt" 2>/dev/null
  rm -f "$ext"
}

if [ "${1:-}" = leaf ]; then
  shift
  leaf "$@"
  exit 0
fi

ca ca "apiserver-proxy test CA"
ca client-ca "apiserver-proxy test client CA"
for type in rsa-pkcs8 rsa-pkcs1 ecdsa; do
  leaf "$here/server-$type" "$type" server
done
leaf "$here/client" ecdsa client client-ca
# Signed by the server CA, not the client CA: a client certificate the webhook must refuse.
leaf "$here/client-wrong-ca" ecdsa client ca
