"""Generate a sample registry storage tree in the distribution filesystem driver's layout.

    python3 gen_registry.py ROOT [--repos N] [--blobs N] [--big-mib M] [--seed S]

Writes ROOT/docker/registry/v2/{blobs,repositories}: content-addressed blobs
(blobs/sha256/XX/<hex>/data, named by their real SHA-256), per-repository layer and manifest
revision links (71-byte "sha256:<hex>" files), and tag links. Content is pseudo-random but
deterministic for a seed. File mtimes are set an hour back, like a registry at rest.
"""
import argparse
import hashlib
import json
import os
import random
import time


def write(path: str, data: bytes, mtime: float) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (mtime, mtime))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--repos", type=int, default=3)
    ap.add_argument("--blobs", type=int, default=12, help="layer blobs per repository")
    ap.add_argument("--big-mib", type=int, default=80, help="size of one large layer (MiB, 0 = none)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    v2 = os.path.join(args.root, "docker", "registry", "v2")
    mtime = time.time() - 3600
    total_files = total_bytes = 0

    def blob(data: bytes) -> str:
        nonlocal total_files, total_bytes
        digest = hashlib.sha256(data).hexdigest()
        write(os.path.join(v2, "blobs", "sha256", digest[:2], digest, "data"), data, mtime)
        total_files += 1
        total_bytes += len(data)
        return digest

    def link(path: str, digest: str) -> None:
        nonlocal total_files, total_bytes
        data = f"sha256:{digest}".encode()
        write(path, data, mtime)
        total_files += 1
        total_bytes += len(data)

    for r in range(args.repos):
        repo = os.path.join(v2, "repositories", f"library/app{r}")
        layers = []
        for i in range(args.blobs):
            size = int(rng.lognormvariate(11, 1.6))  # median ~60 KB, a long tail of MBs
            if r == 0 and i == 0 and args.big_mib:
                size = args.big_mib << 20
            layers.append(blob(rng.randbytes(size)))
        config = blob(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"diff_ids": layers}}).encode())
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": f"sha256:{config}", "size": 0},
            "layers": [{"digest": f"sha256:{d}"} for d in layers],
        }).encode()
        m = blob(manifest)
        for d in layers + [config]:
            link(os.path.join(repo, "_layers", "sha256", d, "link"), d)
        link(os.path.join(repo, "_manifests", "revisions", "sha256", m, "link"), m)
        link(os.path.join(repo, "_manifests", "tags", "latest", "current", "link"), m)
        link(os.path.join(repo, "_manifests", "tags", "latest", "index", "sha256", m, "link"), m)
    print(f"{total_files} files, {total_bytes} bytes under {args.root}")


if __name__ == "__main__":
    main()
