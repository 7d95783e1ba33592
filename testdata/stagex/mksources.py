#!/usr/bin/env python3
"""Writes the demo tree's toy source archives into fetch/ and pins their
sha256 in each package.toml (replacing DEMO_HASH_<key> or the old hash).

The archives are ours (shell scripts standing in for real builds). Output is
deterministic: sorted entries, mtime 1, uid/gid 0, gzip mtime 0, fixed zip
dates. Regenerate with: python3 testdata/stagex/mksources.py
"""
import gzip, hashlib, io, lzma, os, re, tarfile, zipfile

TREE = os.path.dirname(os.path.abspath(__file__))

SOURCES = {
    # (stage, name, key): (file, format, {path: (mode, text)})
    ("bootstrap", "stage0", "seed"): ("seed-1.6.0.tar.gz", {
        "seed-1.6.0/build.sh": (0o644, "set -eu\nmkdir -p /out/etc\nuname -m > /out/etc/arch\necho stage0 > /out/etc/stage0\n"),
    }),
    ("core", "musl", "musl"): ("musl-1.2.5.tar.gz", {
        "musl-1.2.5/build.sh": (0o755, "set -eu\nd=$1\nmkdir -p $d/usr/lib $d/usr/include\ncp libc.txt $d/usr/lib/libc.so\ncp include/stdio.h $d/usr/include/stdio.h\n"),
        "musl-1.2.5/libc.txt": (0o644, "not really a C library\n"),
        "musl-1.2.5/include/stdio.h": (0o644, "int puts(const char *);\n"),
    }),
    ("core", "binutils", "binutils"): ("binutils-2.42.tar.xz", {
        "binutils-2.42/build.sh": (0o755, "set -eu\nd=$1\nmkdir -p $d/usr/bin\nfor t in ld as ar; do printf '#!/bin/sh\\necho %s \"$@\"\\n' $t > $d/usr/bin/$t; chmod 755 $d/usr/bin/$t; done\n"),
    }),
    ("core", "gcc", "gcc"): ("gcc-13.2.0.tar.xz", {
        "gcc-13.2.0/build.sh": (0o755, "set -eu\nd=$1\nmkdir -p $d/usr/bin $d/usr/lib $d/usr/share/gcc\nprintf '#!/bin/sh\\necho gcc \"$@\"\\n' > $d/usr/bin/gcc\nchmod 755 $d/usr/bin/gcc\nln $d/usr/bin/gcc $d/usr/bin/x86_64-linux-musl-gcc\necho libstdc++ > $d/usr/lib/libstdc++.so.6\nln -s libstdc++.so.6 $d/usr/lib/libstdc++.so\ncp COPYING $d/usr/share/gcc/\n"),
        "gcc-13.2.0/COPYING": (0o644, "toy license text\n"),
    }),
    ("core", "gcc", "M2_Mesoplanet"): ("m2-mesoplanet-0.9.1.tar.gz", {
        "m2-mesoplanet-0.9.1/README": (0o644, "A toy M2-Mesoplanet.\n"),
    }),
    ("core", "llvm", "llvm"): ("llvm-project-17.0.6.src.tar.xz", {
        "llvm-project-17.0.6.src/build.sh": (0o755, "set -eu\necho \"unpatched\"\nd=$1\nmkdir -p $d/usr/bin $d/usr/lib $d/usr/share\nfor t in clang clang++ llvm-ar; do printf '#!/bin/sh\\necho %s \"$@\"\\n' $t > $d/usr/bin/$t; chmod 755 $d/usr/bin/$t; done\necho llvm > $d/usr/lib/libLLVM-$2.so\n"),
    }),
    ("user", "hello", "hello"): ("hello-2.12.1.tar.gz", {
        "hello-2.12.1/build.sh": (0o755, "set -eu\nd=$1\nmkdir -p $d/usr/bin\nprintf '#!/bin/sh\\necho \"Hello, world!\"\\n' > $d/usr/bin/hello\nchmod 755 $d/usr/bin/hello\ncp /src/config.h $d/usr/bin/.hello-config.h\n"),
    }),
    ("user", "go-app", "vendor"): ("vendor-1-0-0.zip", {
        "vendor/modules.txt": (0o644, "# example.invalid/mod v1.0.0\n"),
    }),
}


def tar_bytes(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        dirs = set()
        for path in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        for path in sorted(dirs | set(files)):
            ti = tarfile.TarInfo(path)
            ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = 1, 0, 0, "", ""
            if path in dirs:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                mode, text = files[path]
                data = text.encode()
                ti.mode, ti.size = mode, len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def archive(name, files):
    if name.endswith(".zip"):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for path in sorted(files):
                zi = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
                zf.writestr(zi, files[path][1])
        return buf.getvalue()
    raw = tar_bytes(files)
    if name.endswith(".gz"):
        return gzip.compress(raw, compresslevel=9, mtime=0)
    if name.endswith(".xz"):
        return lzma.compress(raw, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64)
    return raw


def main():
    for (stage, pkg, key), (name, files) in sorted(SOURCES.items()):
        data = archive(name, files)
        out = os.path.join(TREE, "fetch", stage, pkg, name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as f:
            f.write(data)
        digest = hashlib.sha256(data).hexdigest()
        toml = os.path.join(TREE, "packages", stage, pkg, "package.toml")
        text = open(toml).read()
        # Replace the hash line of [sources.<key>] only.
        pat = re.compile(r'(\[sources\.%s\][^\[]*?hash = ")[^"]*(")' % re.escape(key), re.S)
        text, n = pat.subn(lambda m: m.group(1) + digest + m.group(2), text)
        assert n == 1, (toml, key)
        open(toml, "w").write(text)
        print(digest, os.path.relpath(out, TREE))


if __name__ == "__main__":
    main()
