#!/usr/bin/env python3
"""Writes the layer tarballs of tests/unit/runtime_applier_test.cpp into OUTDIR.

    make-hostile-layers.py OUTDIR SENTINEL

SENTINEL is the absolute path of a directory next to the test's root that no layer may
touch; hostile symlinks and hardlinks aim at it (and at the host's /etc). Cases named ok-* are
well-formed layers, bad-* the bad-input corpus of research/oci-specs-security.md §6; each is
OUTDIR/<case>.tar or .tar.gz. OUTDIR/index.json maps each case to its file and to the sha256 of
the blob and of the uncompressed tar, computed here independently of the code under test.

Generated at test time (no binaries in git); standard library only; deterministic.
"""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import zlib

MTIME = 1_000_000_000  # 2001-09-09, any fixed value


def info(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link="",
         mtime=MTIME, pax=None, devmajor=0, devminor=0):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.uname = ti.gname = ""
    ti.mtime = mtime
    ti.linkname = link
    ti.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    ti.devmajor, ti.devminor = devmajor, devminor
    if pax:
        ti.pax_headers = dict(pax)
    return ti, data


def F(name, data=b"", **kw):
    return info(name, tarfile.REGTYPE, data, **kw)


def D(name, mode=0o755, **kw):
    return info(name, tarfile.DIRTYPE, mode=mode, **kw)


def L(name, target, **kw):
    return info(name, tarfile.SYMTYPE, link=target, mode=0o777, **kw)


def H(name, target, **kw):
    return info(name, tarfile.LNKTYPE, link=target, **kw)


def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if ti.size else None)
    return buf.getvalue()


def gz(data):
    return gzip.compress(data, compresslevel=6, mtime=0)


def raw_pax_entry(name, size, payload):
    """A PAX entry declaring `size` bytes followed by only `payload`: no trailer."""
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mtime = MTIME
    ti.uname = ti.gname = ""
    return ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + payload


def hardlink_with_data():
    """A file, then a hardlink to it that carries data: PAX says size=6 (libarchive
    CVE-2016-5418 wrote such data through the link into the target)."""
    target, _ = F("target", b"original")
    head = target.tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
    head += b"original".ljust(512, b"\0")
    link = tarfile.TarInfo("link")
    link.type = tarfile.LNKTYPE
    link.linkname = "target"
    link.mtime = MTIME
    link.uname = link.gname = ""
    link.pax_headers = {"size": "6"}
    buf = link.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    return head + buf + b"pwned!".ljust(512, b"\0") + b"\0" * 1024


def gzip_bomb(file_size):
    """A tar of one file of `file_size` zero bytes, as concatenated gzip members: one member
    per MiB of zeros, so writing it costs nothing and it inflates ~1000:1."""
    ti = tarfile.TarInfo("zeros")
    ti.size = file_size
    ti.mtime = MTIME
    header = ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    mib = gz(b"\0" * (1 << 20))
    members = [gz(header)] + [mib] * (file_size >> 20) + [gz(b"\0" * 1024)]
    return b"".join(members)


def cases(sentinel):
    rel_sentinel = "../" * 8 + sentinel.lstrip("/")
    c = {}
    # ---- well-formed -------------------------------------------------------------------
    c["ok-basic"] = [
        D("./", mode=0o755),
        D("bin", mode=0o755, mtime=MTIME + 1),
        F("bin/tool", b"#!/bin/sh\necho tool\n", mode=0o4755, uid=0, gid=0,
          pax={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00"
                                                     "\x00\x00\x00\x00\x00\x00\x00\x00"
                                                     "\x00\x00\x00\x00"}),
        D("home", mtime=MTIME + 2),
        D("home/user", mode=0o700, uid=1000, gid=1000, mtime=MTIME + 3),
        F("home/user/notes.txt", b"hello\n", mode=0o600, uid=1000, gid=1000,
          pax={"SCHILY.xattr.user.comment": "kept",
               "SCHILY.xattr.trusted.overlay.opaque": "y",
               "SCHILY.xattr.trusted.overlay.redirect": "/etc"}),
        H("home/user/notes.link", "home/user/notes.txt"),
        L("home/user/to-notes", "notes.txt"),
        L("home/user/dangling", "/nowhere/at/all"),
        info("home/user/fifo", tarfile.FIFOTYPE, mode=0o640),
        F("home/user/caf\u00e9-\u00fcml\u00e4ut", b"utf8 name\n"),
        F("/absolute-name", b"contained\n"),
        F("./dot-slash", b"x\n"),
    ]
    c["ok-lower"] = [
        D("a"), F("a/x", b"ax"), F("a/y", b"ay"),
        D("b"), F("b/z", b"bz"), D("b/sub"), F("b/sub/deep", b"deep"), F("b/-early", b"lower"),
        F("c", b"c"),
        D("d"), F("d/keep", b"lower-d"),
        D("usr"), D("usr/lib"), L("lib", "usr/lib"),
        F("shared", b"shared content"),
        D("w"), F("w/old", b"lower w"), F("f2", b"lower f2"),
    ]
    c["ok-upper"] = [
        F(".wh.c"),
        D("a"), F("a/.wh.x"),
        D("b"), F("b/-early", b"upper"), F("b/.wh..wh..opq"), F("b/new", b"new"),
        F("d/.wh.keep"), D("d"),  # whiteout listed before its own directory entry
        F("e/.wh..wh..opq"),      # opaque marker of a directory that has no entry
        F("f/.wh..wh.plnk"),      # AUFS metadata: skipped
    ]
    # Over ok-lower, in a plain rootfs only (an overlay snapshot holds one layer: it can't
    # resolve a path through a lower layer's symlink, nor link to a lower layer's file).
    c["ok-through-lower"] = [F("lib/libfoo.so", b"through the lib symlink"),
                             H("shared-link", "shared")]
    c["ok-dupes"] = [F("dup", b"first"), F("dup", b"second", mode=0o600),
                     D("dd"), F("dd/in", b"in"), F("dd", b"file replaces dir"),
                     F("fd", b"file"), D("fd", mode=0o700)]
    c["ok-wh-and-entry"] = [D("w"), F("w/new", b"new"), F(".wh.w"),
                            F(".wh.f2"), F("f2", b"same layer")]
    # ---- hostile ----------------------------------------------------------------------
    c["bad-dotdot"] = [F("../escape", b"x")]
    c["bad-dotdot-nested"] = [D("a"), F("a/../../escape", b"x")]
    c["bad-symlink-abs-write"] = [L("etc", "/etc"), F("etc/passwd", b"pwned\n")]
    c["bad-symlink-sentinel-write"] = [L("evil", sentinel), F("evil/pwned", b"pwned\n")]
    c["bad-symlink-rel-write"] = [L("evil", rel_sentinel), F("evil/pwned", b"pwned\n")]
    c["bad-symlink-replace-dir"] = [D("d", mtime=MTIME), F("d/x", b"x"),
                                    L("d", sentinel), F("d/y", b"pwned\n")]
    c["bad-symlink-replace-file"] = [F("f", b"x"), L("f", sentinel + "/secret"),
                                     F("f", b"pwned\n")]
    c["bad-hardlink-dotdot"] = [H("pw", "../../etc/shadow")]
    c["bad-hardlink-abs"] = [H("pw", "/etc/passwd")]
    c["bad-hardlink-sentinel"] = [H("pw", sentinel + "/secret")]
    c["bad-hardlink-via-symlink"] = [L("s", sentinel), H("h", "s/secret")]
    c["bad-hardlink-via-rel-symlink"] = [L("s", rel_sentinel), H("h", "s/secret")]
    c["bad-hardlink-dir"] = [D("d"), H("h", "d")]
    c["bad-whiteout-dotdot"] = [F(".wh..")]
    c["bad-whiteout-empty"] = [F(".wh.")]
    c["bad-whiteout-dot"] = [F("a/.wh..", b"")]
    c["bad-opaque-through-symlink"] = [L("x", sentinel), F("x/.wh..wh..opq")]
    c["bad-whiteout-through-symlink"] = [L("x", sentinel), F("x/.wh.secret")]
    c["bad-root-symlink"] = [L(".", sentinel)]
    c["bad-root-symlink-slash"] = [L("./", "/")]
    c["bad-root-file"] = [F("./", b"x")]
    c["bad-devices"] = [D("dev"), info("dev/mem", tarfile.CHRTYPE, mode=0o600, devmajor=1, devminor=1),
                        info("dev/sda", tarfile.BLKTYPE, mode=0o600, devmajor=8, devminor=0),
                        info("dev/wh", tarfile.CHRTYPE, mode=0o600, devmajor=0, devminor=0)]
    c["bad-bad-uid"] = [F("f", b"x", uid=4294967295)]
    c["bad-deep"] = [F("/".join(["d"] * 1500) + "/f", b"deep")]
    c["bad-long-name"] = [F("n" * 200 + "/" + "m" * 5000, b"long")]
    c["bad-many"] = [F("f%05d" % i) for i in range(2000)]
    return c


def main():
    out, sentinel = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    index = {}

    def emit(name, blob, tar):
        fname = name + (".tar.gz" if blob[:2] == b"\x1f\x8b" else ".tar")
        with open(os.path.join(out, fname), "wb") as f:
            f.write(blob)
        index[name] = {
            "file": fname,
            "digest": "sha256:" + hashlib.sha256(blob).hexdigest(),
            "diff_id": "sha256:" + hashlib.sha256(tar).hexdigest() if tar is not None else "",
        }

    for name, entries in cases(sentinel).items():
        tar = tar_bytes(entries)
        emit(name, tar, tar)
        emit(name + "-gz", gz(tar), tar)
    # Raw streams tarfile won't write.
    emit("bad-pax-huge-size", raw_pax_entry("huge", 1 << 40, b"A" * 4096), None)
    emit("bad-truncated", tar_bytes([F("f", b"x" * 4096)])[:1536], None)
    tar = tar_bytes([F("f", b"x")])
    emit("bad-gzip-trailing", gz(tar) + b"garbage", tar)
    emit("bad-not-tar", b"this is not a tar archive\n" * 40, None)
    emit("bad-hardlink-data", hardlink_with_data(), None)
    bomb = gzip_bomb(64 << 20)  # 64 MiB of zeros in ~70 KiB
    index["bad-gzip-bomb"] = {"file": "bad-gzip-bomb.tar.gz", "digest": "", "diff_id": ""}
    with open(os.path.join(out, "bad-gzip-bomb.tar.gz"), "wb") as f:
        f.write(bomb)
    # Two gzip members, one tar: a valid multi-member stream (pigz --independent, cat a b).
    tar = tar_bytes([F("one", b"1" * 10000), F("two", b"2" * 10000)])
    emit("ok-multi-member-gz", gz(tar[:7000]) + gz(tar[7000:]), tar)

    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump(index, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
