#!/usr/bin/env python3
# Writes hello.tar.bz2, the bzip2 fixture of add_test.go (Go has no bzip2
# writer). Deterministic: fixed names, modes, owners and mtimes.
# Run from this directory: python3 gen-bzip2.py
import bz2, io, tarfile

buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
    d = tarfile.TarInfo("hello/")
    d.type, d.mode, d.uid, d.gid, d.mtime = tarfile.DIRTYPE, 0o755, 1000, 1000, 1700000000
    tf.addfile(d)
    data = b"hello, world\n"
    f = tarfile.TarInfo("hello/world.txt")
    f.size, f.mode, f.uid, f.gid, f.mtime = len(data), 0o644, 1000, 1000, 1700000000
    tf.addfile(f, io.BytesIO(data))
with open("hello.tar.bz2", "wb") as out:
    out.write(bz2.compress(buf.getvalue(), 9))
