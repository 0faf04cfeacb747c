# shellcheck shell=bash
# Certificates and kubeconfigs of the test cluster, generated with openssl. Sourced by
# testbed/cluster after lib.sh. Everything is ECDSA P-256 (fast to generate, accepted everywhere),
# written once per state directory and reused on the next `up`.

# new_key FILE
new_key() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
    chmod 600 "$1"
}

# issue NAME SUBJECT EXTENSIONS : a key and a certificate signed by the cluster CA.
issue() {
    local name=$1 subject=$2 extensions=$3
    [ -f "$PKI_DIR/$name.crt" ] && return 0
    new_key "$PKI_DIR/$name.key"
    openssl req -new -key "$PKI_DIR/$name.key" -subj "$subject" -out "$PKI_DIR/$name.csr" 2>/dev/null
    openssl x509 -req -in "$PKI_DIR/$name.csr" -CA "$PKI_DIR/ca.crt" -CAkey "$PKI_DIR/ca.key" \
        -CAcreateserial -days 825 -sha256 -out "$PKI_DIR/$name.crt" \
        -extfile <(printf '%s\n' "$extensions") 2>/dev/null
    rm -f "$PKI_DIR/$name.csr"
}

client_extensions() {
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth'
}

# Bump when the set of certificates or their names change: an older pki/ is then regenerated.
PKI_LAYOUT=2

generate_pki() {
    if [ -d "$PKI_DIR" ] && [ "$(cat "$PKI_DIR/layout" 2>/dev/null)" != "$PKI_LAYOUT" ]; then
        say "certificates in $PKI_DIR are from an older layout: regenerating them"
        rm -rf "$PKI_DIR"
    fi
    mkdir -p "$PKI_DIR"
    chmod 700 "$PKI_DIR"
    if [ ! -f "$PKI_DIR/ca.crt" ]; then
        say "generating the cluster CA and certificates in $PKI_DIR"
        new_key "$PKI_DIR/ca.key"
        openssl req -x509 -new -key "$PKI_DIR/ca.key" -subj "/CN=jackal-testbed-ca" -days 3650 -sha256 \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            -out "$PKI_DIR/ca.crt" 2>/dev/null
    fi
    issue apiserver "/CN=kube-apiserver" "$(printf '%s\n' \
        'basicConstraints=critical,CA:FALSE' \
        'keyUsage=critical,digitalSignature,keyEncipherment' \
        'extendedKeyUsage=serverAuth' \
        "subjectAltName=IP:127.0.0.1,IP:$NODE_IP,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")"
    issue admin "/O=system:masters/CN=jackal-testbed-admin" "$(client_extensions)"
    issue controller-manager "/CN=system:kube-controller-manager" "$(client_extensions)"
    issue scheduler "/CN=system:kube-scheduler" "$(client_extensions)"
    issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$(client_extensions)"
    issue front-proxy-client "/CN=front-proxy-client" "$(client_extensions)"
    issue kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$(client_extensions)"
    issue kube-proxy "/CN=system:kube-proxy" "$(client_extensions)"
    issue kubelet-serving "/CN=$NODE_NAME" "$(printf '%s\n' \
        'basicConstraints=critical,CA:FALSE' \
        'keyUsage=critical,digitalSignature,keyEncipherment' \
        'extendedKeyUsage=serverAuth' \
        "subjectAltName=IP:$NODE_IP,IP:127.0.0.1,DNS:$NODE_NAME")"
    if [ ! -f "$PKI_DIR/service-account.key" ]; then
        new_key "$PKI_DIR/service-account.key"
        openssl pkey -in "$PKI_DIR/service-account.key" -pubout -out "$PKI_DIR/service-account.pub" 2>/dev/null
    fi
    echo "$PKI_LAYOUT" >"$PKI_DIR/layout"
}

# write_kubeconfig FILE CERT_NAME : a kubeconfig authenticating with pki/CERT_NAME.{crt,key}.
write_kubeconfig() {
    local file=$1 name=$2
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: jackal-testbed
  cluster:
    server: $API_SERVER_URL
    certificate-authority-data: $(base64 -w0 <"$PKI_DIR/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 <"$PKI_DIR/$name.crt")
    client-key-data: $(base64 -w0 <"$PKI_DIR/$name.key")
contexts:
- name: jackal-testbed
  context:
    cluster: jackal-testbed
    user: $name
current-context: jackal-testbed
EOF
    chmod 600 "$file"
}
