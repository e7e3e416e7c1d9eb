#!/usr/bin/env bash
# Makes a throw-away CA and one node certificate (CN/SAN localhost, 127.0.0.1)
# in directory $1, plus dist.conf for -ssl_dist_optfile: mutual TLS, both
# sides verify the peer against the CA (the cookie handshake still runs on top).
# Used by run.sh when DIST=tls. Copied from shared/bench/erlang/tls_certs.sh.
set -euo pipefail
D=$1
mkdir -p "$D"
cd "$D"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=bench-ca" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout node.key -out node.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' > ext.cnf
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile ext.cnf -out node.pem 2>/dev/null
cat > dist.conf <<EOF
[{server, [{certfile, "$D/node.pem"}, {keyfile, "$D/node.key"},
           {cacertfile, "$D/ca.pem"}, {verify, verify_peer},
           {fail_if_no_peer_cert, true}, {versions, ['tlsv1.3']}]},
 {client, [{certfile, "$D/node.pem"}, {keyfile, "$D/node.key"},
           {cacertfile, "$D/ca.pem"}, {verify, verify_peer},
           {versions, ['tlsv1.3']}]}].
EOF
echo "$D/dist.conf"
