# The benchmark tree: N small files (log-normal sizes around SMALL_MB/N; 60% text, 25%
# structured binary, 15% random) under src/, and big.bin (BIG_MB MiB alternating text and random
# 1 MiB chunks). Sizes and text are seeded; the random parts come from os.urandom, so the tree
# compresses the same way every run without being byte-identical.
#
#   python3 bench/gen_tree.py DIR N SMALL_MB BIG_MB
import math, os, random, sys
root, n, small_mb, big_mb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(20240501)
words = ("the of and to in is for on that with as by this from at are be it an or was "
         "build image layer cache digest manifest config recipe store blob tar gzip zstd "
         "int return const auto std string vector struct class void if else for while "
         "error result value path file dir mode uid gid size time epoch").split()
def text(size):
    out, total = [], 0
    while total < size:
        indent = "    " * rng.randint(0, 3)
        line = indent + " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
        line += rng.choice([";", " {", "", ")", ","]) + "\n"
        out.append(line)
        total += len(line)
    return "".join(out).encode()[:size]
def structured(size):
    rec = bytearray()
    while len(rec) < size:
        rec += b"REC\x00" + rng.randint(0, 1 << 16).to_bytes(4, "little") + b"\x00" * 8
        rec += os.urandom(4) + bytes(rng.choice(b"abcdef") for _ in range(12))
    return bytes(rec[:size])
target = small_mb * 1024 * 1024
mu = math.log(target / n) - 0.5           # log-normal, mean = target / n
sizes = [max(1, int(rng.lognormvariate(mu, 1.0))) for _ in range(n)]
scale = target / sum(sizes)
sizes = [max(1, int(s * scale)) for s in sizes]
for i, size in enumerate(sizes):
    d = os.path.join(root, "src", "d%02d" % (i // 1000), "e%02d" % (i // 100 % 10))
    os.makedirs(d, exist_ok=True)
    kind = rng.random()
    data = text(size) if kind < 0.60 else structured(size) if kind < 0.85 else os.urandom(size)
    with open(os.path.join(d, "f%05d.dat" % i), "wb") as f:
        f.write(data)
chunk = 1 << 20
block_text = text(chunk)
with open(os.path.join(root, "big.bin"), "wb") as f:
    for i in range(big_mb):
        if i % 2 == 0:
            # text, shifted so no two chunks are identical (defeats long-range matching)
            k = rng.randrange(chunk)
            f.write(block_text[k:] + block_text[:k])
        else:
            f.write(os.urandom(chunk))
