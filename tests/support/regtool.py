"""Helpers for tests/roundtrip.sh: talk to a distribution registry over its HTTP API, build an
OCI image index, verify an OCI layout's blobs, and list or delete objects in the test bucket.

    regtool.py index LAYOUT TAG REF:ARCH...       make TAG an index of the given manifests
    regtool.py start-upload REGISTRY REPO BYTES   begin a blob upload, send BYTES, never finish
    regtool.py digests REGISTRY                   print "repo:tag digest" for every tag
    regtool.py verify-layout LAYOUT               every blob hashes to its name; print the count
    regtool.py s3-ls ENDPOINT BUCKET [PREFIX]     print "key size" lines
    regtool.py s3-rm ENDPOINT BUCKET KEY
Registries are host:port over plain HTTP; S3 credentials come from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY.
"""
import hashlib
import json
import os
import sys
import urllib.request

MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


def get(url, accept=None):
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.headers, r.read()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def cmd_index(layout, tag, refs):
    """Write an OCI index over existing manifests (ref:arch) and tag it."""
    index = json.load(open(f"{layout}/index.json"))
    by_ref = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
    manifests = []
    for ref in refs:
        name, arch = ref.split(":")
        m = dict(by_ref[name])
        m.pop("annotations", None)
        m["platform"] = {"architecture": arch, "os": "linux"}
        manifests.append(m)
    body = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }).encode()
    digest = sha256(body)
    with open(f"{layout}/blobs/sha256/{digest}", "wb") as f:
        f.write(body)
    index["manifests"].append({
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "digest": f"sha256:{digest}",
        "size": len(body),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    })
    with open(f"{layout}/index.json", "w") as f:
        json.dump(index, f)
    print(f"sha256:{digest}")


def cmd_start_upload(registry, repo, nbytes):
    req = urllib.request.Request(f"http://{registry}/v2/{repo}/blobs/uploads/", method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 202, r.status
        location = r.headers["Location"]
    if location.startswith("/"):
        location = f"http://{registry}{location}"
    data = os.urandom(int(nbytes))
    req = urllib.request.Request(location, data=data, method="PATCH",
                                 headers={"Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 202, r.status
    print(location)


def cmd_digests(registry):
    _, body = get(f"http://{registry}/v2/_catalog?n=1000")
    for repo in sorted(json.loads(body)["repositories"]):
        _, body = get(f"http://{registry}/v2/{repo}/tags/list")
        for tag in sorted(json.loads(body)["tags"] or []):
            headers, manifest = get(f"http://{registry}/v2/{repo}/manifests/{tag}", MANIFEST_TYPES)
            digest = headers["Docker-Content-Digest"]
            assert digest == f"sha256:{sha256(manifest)}", (repo, tag, digest)
            print(f"{repo}:{tag} {digest}")


def cmd_verify_layout(layout):
    n = 0
    for name in os.listdir(f"{layout}/blobs/sha256"):
        with open(f"{layout}/blobs/sha256/{name}", "rb") as f:
            actual = sha256(f.read())
        assert actual == name, f"blob {name} hashes to {actual}"
        n += 1
    print(n)


def s3(endpoint):
    import boto3
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def cmd_s3_ls(endpoint, bucket, prefix=""):
    for page in s3(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            print(o["Key"], o["Size"])


def cmd_s3_rm(endpoint, bucket, key):
    s3(endpoint).delete_object(Bucket=bucket, Key=key)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "index":
        cmd_index(args[0], args[1], args[2:])
    else:
        globals()["cmd_" + cmd.replace("-", "_")](*args)


if __name__ == "__main__":
    main()
