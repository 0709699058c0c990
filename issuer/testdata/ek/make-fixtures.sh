#!/usr/bin/env bash
# Regenerates the EK trust fixtures in this directory (see README.md).
# Needs swtpm, swtpm_setup, tpm2-tools and openssl (3.x) on PATH.
set -euo pipefail

out="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
swtpm_pid=""
cleanup() {
    if [ -n "$swtpm_pid" ]; then kill "$swtpm_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

# ---------------------------------------------------------------------------
# 1. A real swtpm EK certificate and its local CA.
mkdir cfg state
XDG_CONFIG_HOME="$work/cfg" swtpm_setup --tpm2 --create-config-files root,skip-if-exist >/dev/null
XDG_CONFIG_HOME="$work/cfg" swtpm_setup --tpm2 --tpmstate "$work/state" --create-ek-cert \
    --create-platform-cert --pcr-banks sha1,sha256 --overwrite >/dev/null
port="${SWTPM_PORT:-47311}"
swtpm socket --tpm2 --tpmstate dir="$work/state" \
    --server type=tcp,port="$port",bindaddr=127.0.0.1 \
    --ctrl type=tcp,port="$((port + 1))",bindaddr=127.0.0.1 \
    --flags not-need-init,startup-clear &
swtpm_pid=$!
sleep 1
export TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port"
tpm2_nvread 0x1c00002 -o ek-rsa.nv 2>/dev/null
tpm2_nvread 0x1c00016 -o ek-ecc.nv 2>/dev/null
# Re-encoding drops any NV padding after the DER certificate.
openssl x509 -inform der -in ek-rsa.nv -outform der -out "$out/swtpm-ek-rsa2048.der"
openssl x509 -inform der -in ek-ecc.nv -outform der -out "$out/swtpm-ek-ecc384.der"
# tpm2_createek writes the EK public as a marshalled TPM2B_PUBLIC.
tpm2_createek -c ek-rsa.ctx -G rsa -u "$out/swtpm-ek-rsa2048.tpm2b" >/dev/null
tpm2_flushcontext -t
tpm2_createek -c ek-ecc.ctx -G ecc384 -u "$out/swtpm-ek-ecc384.tpm2b" >/dev/null
tpm2_flushcontext -t
cp cfg/var/lib/swtpm-localca/swtpm-localca-rootca-cert.pem "$out/swtpm-localca-root.pem"
cp cfg/var/lib/swtpm-localca/issuercert.pem "$out/swtpm-localca-issuer.pem"
kill "$swtpm_pid"
swtpm_pid=""

# ---------------------------------------------------------------------------
# 2. A test manufacturer CA built with openssl, and EK certificates shaped
#    like the TCG EK Credential Profile (empty subject, critical SAN
#    directoryName with TPM manufacturer/model/version).
mkdir ca
touch ca/index.txt
echo 1000 > ca/serial
cat > ca.cnf <<'CNF'
[ca]
default_ca = test_ca
[test_ca]
database = ca/index.txt
serial = ca/serial
new_certs_dir = ca
default_md = sha256
policy = policy_any
unique_subject = no
email_in_dn = no
copy_extensions = none
[policy_any]
commonName = optional
organizationName = optional
[req]
distinguished_name = dn
[dn]

[v3_root]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[v3_root_nobc]
[v3_int]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
certificatePolicies = critical, 1.3.6.1.4.1.99999.1.1
[v3_int_not_ca]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_int_nc]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
nameConstraints = critical, permitted;dirName:nc_dn
[nc_dn]
O = Somewhere Else
[tpm_dn]
x.2.23.133.2.1 = id:52544D00
x.2.23.133.2.2 = RootmarkTestTPM
x.2.23.133.2.3 = id:00010002
[ek_rsa]
subjectAltName = critical, dirName:tpm_dn
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyEncipherment
extendedKeyUsage = 2.23.133.8.1
authorityKeyIdentifier = keyid
subjectKeyIdentifier = none
certificatePolicies = 1.3.6.1.4.1.99999.1.1
2.5.29.9 = DER:3019301706056781050210310E300C0C03322E30020100020200A4
[ek_ecc]
subjectAltName = critical, dirName:tpm_dn
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyAgreement
extendedKeyUsage = 2.23.133.8.1
authorityKeyIdentifier = keyid
subjectKeyIdentifier = none
[ek_ecc_noaki]
subjectAltName = critical, dirName:tpm_dn
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyAgreement
subjectKeyIdentifier = none
[ek_unknown_critical]
subjectAltName = critical, dirName:tpm_dn
basicConstraints = critical, CA:FALSE
keyUsage = critical, keyEncipherment
authorityKeyIdentifier = keyid
subjectKeyIdentifier = none
1.3.6.1.4.1.99999.42 = critical, DER:0500
CNF

forever="-startdate 20000101000000Z -enddate 99991231235959Z"
key_ec() { openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$2" -out "$1.key" 2>/dev/null; }
key_rsa() { openssl genpkey -algorithm RSA -pkeyopt "rsa_keygen_bits:$2" -out "$1.key" 2>/dev/null; }
csr() { openssl req -new -config ca.cnf -key "$1.key" -subj "/CN=unused" -out "$1.csr"; }
# sign NAME ISSUER SUBJECT EXTENSIONS DATES... [extra openssl ca args]
sign() {
    local name="$1" issuer="$2" subj="$3" ext="$4"
    shift 4
    openssl ca -batch -notext -config ca.cnf -cert "$issuer.pem" -keyfile "$issuer.key" \
        -in "$name.csr" -subj "$subj" -extensions "$ext" -out "$name.pem" "$@" 2>/dev/null
}

key_ec root P-384; csr root
openssl ca -batch -notext -config ca.cnf -selfsign -keyfile root.key -in root.csr \
    -subj "/O=Rootmark Test/CN=Rootmark Test EK Root" -extensions v3_root -md sha384 \
    -out root.pem $forever 2>/dev/null

key_rsa int 3072; csr int
sign int root "/O=Rootmark Test/CN=Rootmark Test EK Intermediate" v3_int -md sha384 $forever

key_rsa int-expired 2048; csr int-expired
sign int-expired root "/O=Rootmark Test/CN=Rootmark Test EK Intermediate (expired)" v3_int \
    -md sha384 -startdate 20000101000000Z -enddate 20010101000000Z

key_ec int-not-ca P-256; csr int-not-ca
sign int-not-ca root "/O=Rootmark Test/CN=Rootmark Test not a CA" v3_int_not_ca -md sha384 $forever

key_ec int-nc P-256; csr int-nc
sign int-nc root "/O=Rootmark Test/CN=Rootmark Test EK Intermediate (name constrained)" v3_int_nc \
    -md sha384 $forever

key_ec root-nobc P-256; csr root-nobc
openssl ca -batch -notext -config ca.cnf -selfsign -keyfile root-nobc.key -in root-nobc.csr \
    -subj "/O=Rootmark Test/CN=Rootmark Test EK Root without basicConstraints" \
    -extensions v3_root_nobc -md sha256 -out root-nobc.pem $forever 2>/dev/null

key_rsa ek-rsa 2048; csr ek-rsa
key_ec ek-ecc P-256; csr ek-ecc
cp ek-rsa.csr ek-unknown.csr; cp ek-rsa.csr ek-expired-int.csr; cp ek-ecc.csr ek-not-ca.csr
cp ek-ecc.csr ek-nc.csr; cp ek-ecc.csr ek-nobc.csr
sign ek-rsa int "/" ek_rsa -md sha256 -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest $forever
sign ek-ecc int "/" ek_ecc -md sha384 $forever
sign ek-unknown int "/" ek_unknown_critical -md sha256 $forever
sign ek-expired-int int-expired "/" ek_rsa -md sha256 -startdate 20000601000000Z -enddate 99991231235959Z
sign ek-not-ca int-not-ca "/" ek_ecc -md sha256 $forever
sign ek-nc int-nc "/" ek_ecc -md sha256 $forever
sign ek-nobc root-nobc "/" ek_ecc_noaki -md sha256 $forever

cp root.pem "$out/test-root.pem"
cp int.pem "$out/test-intermediate.pem"
cp int-expired.pem "$out/test-intermediate-expired.pem"
cp int-not-ca.pem "$out/test-intermediate-not-ca.pem"
cp int-nc.pem "$out/test-intermediate-name-constrained.pem"
cp root-nobc.pem "$out/test-root-without-basic-constraints.pem"
der() { openssl x509 -in "$1.pem" -outform der -out "$out/$2"; }
der ek-rsa test-ek-rsa2048.der
der ek-ecc test-ek-ecc-p256.der
der ek-unknown ek-critical-unknown-ext.der
der ek-expired-int ek-under-expired-intermediate.der
der ek-not-ca ek-under-non-ca-intermediate.der
der ek-nc ek-outside-name-constraints.der
der ek-nobc ek-under-root-without-basic-constraints.der

# The good RSA EK certificate with one bit of its signature flipped.
good="$out/test-ek-rsa2048.der"
len=$(wc -c < "$good")
last=$(tail -c 1 "$good" | od -An -tu1 | tr -d ' ')
head -c $((len - 1)) "$good" > "$out/ek-tampered-signature.der"
printf "\\$(printf %03o $((last ^ 1)))" >> "$out/ek-tampered-signature.der"

chmod 644 "$out"/*.der "$out"/*.pem "$out"/*.tpm2b
echo "fixtures written to $out"
