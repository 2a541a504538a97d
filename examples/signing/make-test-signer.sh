#!/usr/bin/env bash
# A private test CA and a signer certificate for C2PA content credentials, made with openssl, for trying
# `modomo transform --sign-cert --sign-key` before a real certificate is bought or issued. Validators report
# results signed with it as valid but untrusted (signingCredential.untrusted): its CA is on no trust list.
#
#   bash examples/signing/make-test-signer.sh keys/   # writes keys/chain.pem and keys/signer.key
set -euo pipefail
dir=${1:-signer}
mkdir -p "$dir"
cd "$dir"
umask 077  # the private keys are readable by their owner only
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
  -keyout ca.key -out ca.pem -subj "/CN=Test CA/O=Test" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout signer.key -out signer.csr -subj "/CN=Test signer/O=Test" 2>/dev/null
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
  "extendedKeyUsage=emailProtection" "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" > signer.ext
openssl x509 -req -in signer.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 \
  -extfile signer.ext -out signer.pem 2>/dev/null
cat signer.pem ca.pem > chain.pem  # the signer's certificate first
rm -f signer.csr signer.ext ca.srl
echo "$PWD/chain.pem and $PWD/signer.key (CA key: $PWD/ca.key)"
