"""Generate the benchmark's source trees (deterministic, idempotent) under OUT:
  w1/  registry mix: LINKS 71-byte link files and BLOBS blobs, log-normal sizes around 15 MB,
       laid out as docker/registry/v2 (blobs/sha256/XX/<hex>/data, repositories/...)
  w2/  SMALL files of 4 KiB
  w3/  LARGE files of 1 GiB
  w6/  1,000,000 files of 71 bytes in 1,000 directories: many tiny files, for the memory bound
  reg-N/  a registry of N files in the distribution layout (not multiplied by SCALE): about
       40% blobs (layers, configs, manifests; layers log-normal around 5 KB, W1's shape scaled
       down three thousand times in bytes, not in files; some layers shared between images)
       and 60% the links a registry keeps for them (layer links, manifest revisions, tags'
       current and index links)
    gen.py OUT SCALE [WORKLOADS]
Sizes and counts are multiplied by SCALE (1 = the issue's workloads). WORKLOADS is a comma list
of main (w1, w2, w3), w6 and reg-N; all of main and w6 when not given.
"""
import hashlib
import math
import os
import random
import sys


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def main():
    out, scale = sys.argv[1], float(sys.argv[2])
    wanted = [w for w in sys.argv[3].split(",") if w] if len(sys.argv) > 3 else ["main", "w6"]
    for w in wanted:
        if w == "main":
            gen_main(out, scale)
        elif w == "w6":
            gen_w6(out, scale)
        elif w.startswith("reg-"):
            gen_registry(out, int(w[4:]))
        else:
            sys.exit(f"gen.py: unknown workload {w!r}")


def gen_main(out, scale):
    rnd = random.Random(42)
    links, blobs = int(20000 * scale), max(1, int(1000 * scale))
    small, large = int(100000 * scale), 4
    large_size = int((1 << 30) * min(1.0, scale * 4))
    stamp = os.path.join(out, f".done-{scale}")
    if os.path.exists(stamp):
        return
    v2 = os.path.join(out, "w1", "docker", "registry", "v2")
    block = os.urandom(1 << 20)
    digests = []
    for i in range(blobs):
        size = int(min(200e6, max(1000, rnd.lognormvariate(math.log(15e6) - 0.5, 1.0))))
        head = i.to_bytes(8, "little")
        data = head + (block * (size // len(block) + 1))[: size - len(head)]
        hexd = hashlib.sha256(data).hexdigest()
        write(os.path.join(v2, "blobs", "sha256", hexd[:2], hexd, "data"), data)
        digests.append(hexd)
    for i in range(links):
        # Every link points at a blob that exists (a dangling link would be refused).
        d = digests[i % len(digests)]
        repo = f"project{i // len(digests) % 20}/app{i // len(digests)}"
        write(os.path.join(v2, "repositories", repo, "_layers", "sha256", d, "link"), f"sha256:{d}".encode())
    for i in range(small):
        write(os.path.join(out, "w2", f"d{i % 100:02}", f"f{i:06}"), rnd.randbytes(4096))
    for i in range(large):
        p = os.path.join(out, "w3", f"large{i}.bin")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            left = large_size
            while left > 0:
                n = min(left, len(block))
                f.write(block[:n])
                left -= n
            f.seek(0)
            f.write(i.to_bytes(8, "little"))
    open(stamp, "w").close()


def gen_w6(out, scale):
    stamp = os.path.join(out, f".done-w6-{scale}")
    if os.path.exists(stamp):
        return
    rnd = random.Random(6)
    for i in range(int(1000000 * scale)):
        write(os.path.join(out, "w6", f"d{i % 1000:03}", f"f{i:07}"), rnd.randbytes(71))
    open(stamp, "w").close()


def gen_registry(out, files):
    """A distribution tree of `files` files: per image, a manifest, a config and layers (each a
    blob, some layers shared between images), the repository's links to each, and a tag."""
    stamp = os.path.join(out, f".done-reg-{files}")
    if os.path.exists(stamp):
        return
    rnd = random.Random(files)
    v2 = os.path.join(out, f"reg-{files}", "docker", "registry", "v2")
    block = os.urandom(1 << 16)
    written = 0
    shared = []  # layer digests other images may reuse (base images)

    def blob(size):
        nonlocal written
        head = rnd.getrandbits(64).to_bytes(8, "little")
        data = head + (block * (size // len(block) + 1))[: size - len(head)]
        hexd = hashlib.sha256(data).hexdigest()
        write(os.path.join(v2, "blobs", "sha256", hexd[:2], hexd, "data"), data)
        written += 1
        return hexd

    def link(path, hexd):
        nonlocal written
        write(os.path.join(v2, "repositories", path, "link"), f"sha256:{hexd}".encode())
        written += 1

    image = 0
    while written < files:
        # Short names: s3s-fs keeps each object's metadata in a file named after the base64 of
        # bucket and key, so it refuses keys over about 150 characters.
        repo = f"p{image % 50}/a{image // 50}"
        layers = []
        for _ in range(rnd.randint(3, 8)):
            if shared and rnd.random() < 0.3:
                layers.append(rnd.choice(shared))
            else:
                d = blob(int(min(64e3, max(200, rnd.lognormvariate(math.log(5e3) - 0.5, 1.0)))))
                layers.append(d)
                if len(shared) < 200:
                    shared.append(d)
        config, manifest = blob(rnd.randint(1500, 8000)), blob(rnd.randint(500, 3000))
        for d in set(layers) | {config}:
            link(f"{repo}/_layers/sha256/{d}", d)
        link(f"{repo}/_manifests/revisions/sha256/{manifest}", manifest)
        tag = f"t{image}"
        link(f"{repo}/_manifests/tags/{tag}/current", manifest)
        link(f"{repo}/_manifests/tags/{tag}/index/sha256/{manifest}", manifest)
        image += 1
    open(stamp, "w").close()


if __name__ == "__main__":
    main()
