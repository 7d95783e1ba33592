#!/usr/bin/env python3
"""Writes the compat corpus's source archives into fetch/ and pins their
sha256 in each package.toml (the hash line of the matching [sources.<key>]).

The archives are ours: shell scripts and text standing in for real sources,
made to exercise what ADD must get right (every compression, content
detection, setuid bits, hardlinks, symlinks, long and non-ASCII names, empty
directories, odd owners and times). Output is deterministic: entries in the
order listed, fixed owners and times, gzip mtime 0, fixed zip dates, zstd
written as raw blocks (no compressor needed). Regenerate with:

    python3 testdata/compat/mksources.py
"""
import bz2, gzip, hashlib, io, lzma, os, re, struct, tarfile, zipfile

TREE = os.path.dirname(os.path.abspath(__file__))

LONG = "a-very-long-directory-name-" + "x" * 80
UTF = "réservé-日本語-ünïcödé"
CAP_NET_RAW = "\x01\x00\x00\x02\x00\x20\x00\x00" + "\x00" * 12  # vfs_cap_data v2, effective


def elf_i386_writer(path, message):
    """A minimal static i386 ELF (no libc, no shell needed) that writes
    message to path and exits 0: stands in for StageX's hex0 seed."""
    base = 0x08048000
    code_off = 52 + 32
    code_len = 5 + 5 + 5 + 5 + 2 + 2 + 5 + 5 + 5 + 2 + 5 + 2 + 2
    path_addr = base + code_off + code_len
    msg_addr = path_addr + len(path) + 1
    code = b"".join([
        b"\xb8" + struct.pack("<I", 5),             # mov eax, 5 (open)
        b"\xbb" + struct.pack("<I", path_addr),     # mov ebx, path
        b"\xb9" + struct.pack("<I", 0x241),         # mov ecx, O_WRONLY|O_CREAT|O_TRUNC
        b"\xba" + struct.pack("<I", 0o644),         # mov edx, 0644
        b"\xcd\x80",                                 # int 0x80
        b"\x89\xc3",                                 # mov ebx, eax
        b"\xb8" + struct.pack("<I", 4),             # mov eax, 4 (write)
        b"\xb9" + struct.pack("<I", msg_addr),      # mov ecx, message
        b"\xba" + struct.pack("<I", len(message)),  # mov edx, length
        b"\xcd\x80",                                 # int 0x80
        b"\xb8" + struct.pack("<I", 1),             # mov eax, 1 (exit)
        b"\x31\xdb",                                 # xor ebx, ebx
        b"\xcd\x80",                                 # int 0x80
    ])
    assert len(code) == code_len
    data = path.encode() + b"\0" + message.encode()
    size = code_off + len(code) + len(data)
    ehdr = b"\x7fELF\x01\x01\x01" + b"\0" * 9 + struct.pack("<HHIIIIIHHHHHH",
        2, 3, 1, base + code_off, 52, 0, 0, 52, 32, 1, 0, 0, 0)
    phdr = struct.pack("<IIIIIIII", 1, 0, base, base, size, size, 5, 0x1000)
    return (ehdr + phdr + code + data).decode("latin-1")


def f(path, text, mode=0o644, **kw):
    return dict(kind="file", path=path, text=text, mode=mode, **kw)


def d(path, mode=0o755, **kw):
    return dict(kind="dir", path=path, mode=mode, **kw)


def sym(path, target, **kw):
    return dict(kind="sym", path=path, target=target, mode=0o777, **kw)


def hard(path, target, **kw):
    return dict(kind="hard", path=path, target=target, mode=0o644, **kw)


def script(path, text):
    return f(path, "set -eu\n" + text, 0o755)


SOURCES = {
    # (stage, name, key): (file, tar format, [entries]); directories are
    # not implied: list them (or leave them out on purpose).
    ("bootstrap", "stage0", "seeds"): ("stage0-seeds-1.0.tar.gz", tarfile.USTAR_FORMAT, [
        d("seeds"),
        f("seeds/hex0.hex", "## hex0 seed\n31 C0\n"),
        f("seeds/kaem.run", "echo kaem\n", 0o755),
        f("seeds/hello-i386", elf_i386_writer("/out/seeds/written-by-i386", "an i386 binary ran\n"), 0o755),
        d("seeds/empty"),
    ]),
    ("bootstrap", "stage1", "stage1"): ("stage1-1.1.tar.bz2", tarfile.PAX_FORMAT, [
        d("stage1-1.1"),
        f("stage1-1.1/M2.hex", "## M2\n"),
        sym("stage1-1.1/latest", "M2.hex"),
    ]),
    ("core", "musl", "musl"): ("musl-1.2.5.tar.gz", tarfile.PAX_FORMAT, [
        d("musl-1.2.5"),
        d("musl-1.2.5/include"),
        script("musl-1.2.5/build.sh", "d=$1\nmkdir -p $d/usr/lib $d/usr/include $d/lib\ncp libc.txt $d/usr/lib/libc.so\ncp include/stdio.h $d/usr/include/\nln -s ../usr/lib/libc.so $d/lib/ld-musl-x86_64.so.1\n"),
        f("musl-1.2.5/libc.txt", "not really a C library\n"),
        f("musl-1.2.5/include/stdio.h", "int puts(const char *);\n"),
    ]),
    ("core", "zlib", "zlib"): ("zlib-1.3.1.tar.bz2", tarfile.PAX_FORMAT, [
        d("zlib-1.3.1"),
        script("zlib-1.3.1/build.sh", "d=$1\nmkdir -p $d/usr/lib\necho zlib > $d/usr/lib/libz.so.1.3.1\nln -s libz.so.1.3.1 $d/usr/lib/libz.so.1\nln -s libz.so.1 $d/usr/lib/libz.so\n"),
        f("zlib-1.3.1/zlib.h", "#define ZLIB_VERSION \"1.3.1\"\n"),
    ]),
    ("core", "xz", "xz"): ("xz-5.6.2.tar.xz", tarfile.GNU_FORMAT, [
        d("xz-5.6.2"),
        script("xz-5.6.2/build.sh", "d=$1\nmkdir -p $d/usr/bin\nprintf '#!/bin/sh\\necho xz \"$@\"\\n' > $d/usr/bin/xz\nchmod 755 $d/usr/bin/xz\nfor l in unxz xzcat lzma; do ln $d/usr/bin/xz $d/usr/bin/$l; done\n"),
    ]),
    ("core", "zstd", "zstd"): ("zstd-1.5.6.tar.zst", tarfile.PAX_FORMAT, [
        d("zstd-1.5.6"),
        d("zstd-1.5.6/lib"),
        f("zstd-1.5.6/lib/zstd.h", "#define ZSTD_VERSION_MAJOR 1\n"),
        script("zstd-1.5.6/build.sh", "d=$1\nmkdir -p $d/usr/include\ncp lib/zstd.h $d/usr/include/\n"),
        f("zstd-1.5.6/big.txt", "".join("line %05d of a file larger than one zstd block\n" % i for i in range(4000))),
    ]),
    ("core", "tar", "tar"): ("tar-1.35.tar", tarfile.USTAR_FORMAT, [
        d("tar-1.35"),
        f("tar-1.35/README", "plain tar, no compression\n"),
        f("tar-1.35/owned", "owned by 1000:1000\n", uid=1000, gid=1000, uname="user", gname="user"),
    ]),
    ("core", "tar", "extras"): ("extras-1.35.tgz", tarfile.PAX_FORMAT, [
        f("extras/one", "a .tgz: gzip found by content\n"),
    ]),
    ("core", "tar", "blob"): ("blob-1.35.bin", tarfile.PAX_FORMAT, [
        d("blob"),
        f("blob/inside", "an xz tarball named .bin\n"),
    ]),
    ("core", "archives", "docs"): ("docs-2.0.zip", None, [
        f("docs/index.html", "<p>zip files are copied as they are</p>\n"),
        f("docs/README", "docs\n"),
    ]),
    ("core", "archives", "notes"): ("NOTES-2.0.txt", None, "release notes, plain text\n"),
    ("core", "archives", "gznotes"): ("notes-2.0.txt.gz", None, "gzip of text that is not a tar\n"),
    ("core", "names", "names"): ("names-1.0.tar.gz", tarfile.PAX_FORMAT, [
        d("names-1.0"),
        d("names-1.0/" + LONG),
        d("names-1.0/" + LONG + "/" + LONG),
        f("names-1.0/" + LONG + "/" + LONG + "/" + "file-with-a-long-name-" + "y" * 90 + ".txt", "deep\n"),
        f("names-1.0/" + UTF + ".txt", "non-ASCII name\n"),
        f("names-1.0/with space and 'quote'", "spaces\n"),
        sym("names-1.0/link-" + UTF, UTF + ".txt"),
        sym("names-1.0/long-target", LONG + "/" + LONG),
    ]),
    ("core", "names", "gnunames"): ("gnu-names-1.0.tar.xz", tarfile.GNU_FORMAT, [
        d("gnu"),
        f("gnu/" + "gnu-long-name-" + "z" * 120, "gnu longname\n"),
        sym("gnu/" + "gnu-long-link-" + "w" * 110, "gnu-long-name-" + "z" * 120),
    ]),
    ("core", "perms", "perms"): ("perms-1.0.tar.xz", tarfile.PAX_FORMAT, [
        d("perms-1.0"),
        d("perms-1.0/bin"),
        f("perms-1.0/bin/su", "#!/bin/sh\necho su\n", 0o4755),
        f("perms-1.0/bin/wall", "#!/bin/sh\necho wall\n", 0o2755),
        hard("perms-1.0/bin/su-hardlink", "perms-1.0/bin/su", ),
        d("perms-1.0/tmp", 0o1777),
        d("perms-1.0/empty"),
        d("perms-1.0/private", 0o700),
        f("perms-1.0/private/key", "secret\n", 0o600),
        f("perms-1.0/old", "mtime zero\n", mtime=0),
        f("perms-1.0/future", "mtime in 2100\n", mtime=4102444800),
        f("perms-1.0/readonly", "read only\n", 0o444),
        f("perms-1.0/owned", "uid 1000\n", uid=1000, gid=100),
        f("perms-1.0/bin/ping-cap", "#!/bin/sh\necho capable\n", 0o755, xattrs={"security.capability": CAP_NET_RAW}),
        sym("perms-1.0/dangling", "/does/not/exist"),
        sym("perms-1.0/bin/absolute", "/bin/su"),
    ]),
    ("core", "binutils", "binutils"): ("binutils-2.42.tar.xz", tarfile.PAX_FORMAT, [
        d("binutils-2.42"),
        script("binutils-2.42/build.sh", "d=$1\nmkdir -p $d/usr/bin\nfor t in ld as ar; do printf '#!/bin/sh\\necho %s \"$@\"\\n' $t > $d/usr/bin/$t; chmod 755 $d/usr/bin/$t; done\n"),
    ]),
    ("core", "gcc", "gcc"): ("gcc-13.2.0.tar.xz", tarfile.PAX_FORMAT, [
        d("gcc-13.2.0"),
        script("gcc-13.2.0/build.sh", "d=$1\nmkdir -p $d/usr/bin $d/usr/lib $d/usr/share/gcc\nprintf '#!/bin/sh\\necho gcc \"$@\"\\n' > $d/usr/bin/gcc\nchmod 755 $d/usr/bin/gcc\nln $d/usr/bin/gcc $d/usr/bin/x86_64-linux-musl-gcc\nln -s gcc $d/usr/bin/cc\necho libstdc++ > $d/usr/lib/libstdc++.so.6\nln -s libstdc++.so.6 $d/usr/lib/libstdc++.so\necho libgcc > $d/usr/lib/libgcc_s.so.1\ncp COPYING $d/usr/share/gcc/\n"),
        f("gcc-13.2.0/COPYING", "toy license text\n"),
    ]),
    ("core", "gcc", "M2_Mesoplanet"): ("m2-mesoplanet-0.9.1.tar.gz", tarfile.PAX_FORMAT, [
        d("m2-mesoplanet-0.9.1"),
        f("m2-mesoplanet-0.9.1/README", "A toy M2-Mesoplanet.\n"),
    ]),
    ("core", "llvm", "llvm"): ("llvm-project-17.0.6.src.tar.xz", tarfile.PAX_FORMAT, [
        d("llvm-project-17.0.6.src"),
        script("llvm-project-17.0.6.src/build.sh", "echo \"unpatched\"\nd=$1\nmkdir -p $d/usr/bin $d/usr/lib\nfor t in clang clang++ llvm-ar; do printf '#!/bin/sh\\necho %s \"$@\"\\n' $t > $d/usr/bin/$t; chmod 755 $d/usr/bin/$t; done\necho llvm > $d/usr/lib/libLLVM-$2.so\n"),
    ]),
    ("user", "hello", "hello"): ("hello-2.12.1.tar.gz", tarfile.PAX_FORMAT, [
        d("hello-2.12.1"),
        script("hello-2.12.1/build.sh", "d=$1\nmkdir -p $d/usr/bin\nprintf '#!/bin/sh\\necho \"Hello, world!\"\\n' > $d/usr/bin/hello\nchmod 755 $d/usr/bin/hello\n"),
    ]),
    ("core", "messy", "messy"): ("messy-1.0.tar.gz", tarfile.PAX_FORMAT, [
        f("./messy/nodir/file", "no directory entry before me\n"),
        d("./messy"),
        f("messy/dup", "first\n"),
        f("messy/dup", "second, wins\n", 0o600),
        f("/messy-absolute", "an absolute name\n"),
        f("existing/file", "replaces a file of the image\n"),
        f("link/through", "written through a symlink of the image\n"),
        sym("messy/sym", "dup"),
        hard("messy/hard-to-sym", "messy/sym"),
        dict(kind="fifo", path="messy/fifo", mode=0o644),
        dict(kind="chr", path="messy/null", mode=0o666, major=1, minor=3),
        d("messy/late-dir", 0o750),
    ]),
    ("user", "app", "app"): ("app-3.1.4.tar.zst", tarfile.PAX_FORMAT, [
        d("app-3.1.4"),
        d("app-3.1.4/doc"),
        f("app-3.1.4/doc/app.1", ".TH APP 1\n"),
        d("app-3.1.4/include"),
        f("app-3.1.4/include/app.h", "int app(void);\n"),
        script("app-3.1.4/build.sh", "d=$1\nmkdir -p $d/usr/bin $d/usr/share/man/man1 $d/usr/include\nprintf '#!/bin/sh\\necho app\\n' > $d/usr/bin/app\nchmod 755 $d/usr/bin/app\ncp doc/app.1 $d/usr/share/man/man1/\ncp include/app.h $d/usr/include/\n"),
    ]),
}


# Files of package directories (the build context) that are made here, not
# fetched: (stage, name, path) -> (file, tar format, entries), or a symlink
# target string. Not pinned; git stores them.
LOCAL = {
    ("user", "edge", "local.tar.gz"): ("local.tar.gz", tarfile.PAX_FORMAT, [
        d("local"),
        f("local/from-the-context", "a tar.gz in the context is extracted too\n"),
        sym("local/link", "from-the-context"),
    ]),
    ("user", "edge", "conf/link.conf"): "a.conf",
}


def tar_bytes(entries, fmt):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8") as tf:
        for e in entries:
            ti = tarfile.TarInfo(e["path"])
            ti.mtime = e.get("mtime", 1700000000)
            ti.uid, ti.gid = e.get("uid", 0), e.get("gid", 0)
            ti.uname, ti.gname = e.get("uname", "root"), e.get("gname", "root")
            ti.mode = e["mode"]
            if "xattrs" in e:
                ti.pax_headers = {"SCHILY.xattr." + k: v for k, v in e["xattrs"].items()}
            data = None
            if e["kind"] == "dir":
                ti.type = tarfile.DIRTYPE
            elif e["kind"] == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, e["target"]
            elif e["kind"] == "fifo":
                ti.type = tarfile.FIFOTYPE
            elif e["kind"] == "chr":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, e["major"], e["minor"]
            elif e["kind"] == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, e["target"]
            else:
                data = e["text"].encode("latin-1" if e["path"].endswith("-i386") else "utf-8")
                ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def zstd_raw(data):
    """A zstd frame of raw (stored) blocks: valid zstd, no compressor."""
    out = bytearray(struct.pack("<I", 0xFD2FB528))
    out.append(0xA0)  # 4-byte content size, single segment, no checksum
    out += struct.pack("<I", len(data))
    step = 128 * 1024
    chunks = [data[i:i + step] for i in range(0, len(data), step)] or [b""]
    for i, c in enumerate(chunks):
        last = 1 if i == len(chunks) - 1 else 0
        out += struct.pack("<I", (len(c) << 3) | last)[:3]  # block type 0: raw
        out += c
    return bytes(out)


def archive(name, fmt, entries):
    if isinstance(entries, str):
        data = entries.encode()
        return gzip.compress(data, compresslevel=9, mtime=0) if name.endswith(".gz") else data
    if name.endswith(".zip"):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for e in entries:
                zf.writestr(zipfile.ZipInfo(e["path"], date_time=(1980, 1, 1, 0, 0, 0)), e["text"])
        return buf.getvalue()
    raw = tar_bytes(entries, fmt)
    if name.endswith((".gz", ".tgz")):
        return gzip.compress(raw, compresslevel=9, mtime=0)
    if name.endswith((".xz", ".bin")):
        return lzma.compress(raw, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64)
    if name.endswith(".bz2"):
        return bz2.compress(raw, 9)
    if name.endswith(".zst"):
        return zstd_raw(raw)
    return raw


def deep_containerfile(base, steps, run):
    """A stage of `steps` steps, WORKDIRs and COPY heredocs taking turns,
    then (with run) a RUN, then a COPY of top.txt at its top: deeper than
    one page of overlay mount options names layers by path."""
    lines = ["# Generated by mksources.py: a stage %d steps deep, a COPY at its top." % (steps + 1 + run),
             "FROM %s AS package" % base]
    for i in range(1, steps + 1):
        if i % 2:
            lines.append("WORKDIR /deep/%03d" % i)
        else:
            lines += ["COPY <<EOF /deep/%03d/f" % i, str(i), "EOF"]
    if run:
        lines.append("RUN --network=none echo ran > /deep/ran")
    lines.append("COPY top.txt /deep/")
    return "\n".join(lines) + "\n"


# Generated Containerfiles: (stage, package) -> text.
CONTAINERFILES = {
    ("core", "deep"): deep_containerfile("scratch", 299, False),
    ("user", "deep"): deep_containerfile("stagex/core-busybox", 298, True),
}


def main():
    for (stage, pkg), text in sorted(CONTAINERFILES.items()):
        out = os.path.join(TREE, "packages", stage, pkg, "Containerfile")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        open(out, "w", encoding="utf-8").write(text)
    for (stage, pkg, key), (name, fmt, entries) in sorted(SOURCES.items()):
        data = archive(name, fmt, entries)
        out = os.path.join(TREE, "fetch", stage, pkg, name)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "wb") as fh:
            fh.write(data)
        os.chmod(out, 0o644)
        digest = hashlib.sha256(data).hexdigest()
        toml = os.path.join(TREE, "packages", stage, pkg, "package.toml")
        text = open(toml, encoding="utf-8").read()
        pat = re.compile(r'(\[sources\.%s\][^\[]*?hash = ")[^"]*(")' % re.escape(key), re.S)
        text, n = pat.subn(lambda m: m.group(1) + digest + m.group(2), text)
        assert n == 1, (toml, key)
        open(toml, "w", encoding="utf-8").write(text)
        print(digest, os.path.relpath(out, TREE))
    for (stage, pkg, path), spec in sorted(LOCAL.items()):
        out = os.path.join(TREE, "packages", stage, pkg, path)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        if isinstance(spec, str):
            if os.path.lexists(out):
                os.remove(out)
            os.symlink(spec, out)
            continue
        name, fmt, entries = spec
        with open(out, "wb") as fh:
            fh.write(archive(name, fmt, entries))
        os.chmod(out, 0o644)


if __name__ == "__main__":
    main()
