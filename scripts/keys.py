"""Writes a key file in the stack secret's layout (jwt_kid, jwt_private_key,
jwt_public_key, jwt_jwks) from an RSA key made with the openssl command, so
scripts can run the services without AWS. The kid is the RFC 7638 thumbprint.

    python3 scripts/keys.py OUT.json
"""
import base64, hashlib, json, subprocess, sys, tempfile, os

def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

with tempfile.TemporaryDirectory() as tmp:
    key = os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", key],
                   check=True, capture_output=True)
    private = open(key).read()
    public = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], check=True, capture_output=True, text=True).stdout
    modulus = subprocess.run(["openssl", "rsa", "-in", key, "-noout", "-modulus"], check=True, capture_output=True, text=True).stdout
n = b64(bytes.fromhex(modulus.strip().split("=", 1)[1]))
e = b64((65537).to_bytes(3, "big"))
kid = b64(hashlib.sha256(json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":"), sort_keys=True).encode()).digest())
jwk = {"kty": "RSA", "n": n, "e": e, "kid": kid, "alg": "RS256", "use": "sig"}
json.dump({"jwt_kid": kid, "jwt_private_key": private, "jwt_public_key": public, "jwt_jwks": {"keys": [jwk]}},
          open(sys.argv[1], "w"))
