package sandbox

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/opencontainers/runc/libcontainer/system"
	"golang.org/x/sys/unix"
)

// How the i386 probe ran.
type probeResult int

const (
	probeNoExec   probeResult = iota // the kernel refused it (no IA32 emulation, no binfmt_misc entry)
	probeNative                      // it ran as a 32-bit process of the host's kernel
	probeEmulated                    // it ran, but not on the host's kernel: through qemu-i386
)

func (r probeResult) String() string {
	return [...]string{"does not run", "runs natively", "runs emulated"}[r]
}

// i386Probe is a static i386 program that tells whether it runs natively:
// it calls uname(2) and exits 0 when the machine is "x86_64" (a 32-bit
// process of an amd64 kernel), 1 otherwise (qemu-i386 says "i686"), 2 when
// uname fails. Hand-assembled so that sxmake needs no i386 toolchain, and
// no binary is kept in the repository.
var i386Probe = elf386([]byte{
	0x81, 0xec, 0x90, 0x01, 0x00, 0x00, //       sub  esp, 400        ; struct new_utsname (6 x 65 bytes)
	0x89, 0xe3, //                               mov  ebx, esp
	0xb8, 0x7a, 0x00, 0x00, 0x00, //             mov  eax, 122        ; uname
	0xcd, 0x80, //                               int  0x80
	0xbb, 0x02, 0x00, 0x00, 0x00, //             mov  ebx, 2
	0x85, 0xc0, //                               test eax, eax
	0x75, 0x14, //                               jnz  exit
	0xbb, 0x01, 0x00, 0x00, 0x00, //             mov  ebx, 1
	0x81, 0xbc, 0x24, 0x04, 0x01, 0x00, 0x00, // cmp  dword [esp+260], "x86_"  ; the machine field
	'x', '8', '6', '_',
	0x75, 0x02, //                               jne  exit
	0x31, 0xdb, //                               xor  ebx, ebx
	0xb8, 0x01, 0x00, 0x00, 0x00, //             exit: mov eax, 1     ; exit(ebx)
	0xcd, 0x80, //                               int  0x80
})

// elf386 returns a static i386 Linux executable made of code: one segment
// holding the headers and code, loaded at 0x08048000 and entered at the
// first byte of code.
func elf386(code []byte) []byte {
	const (
		base    = 0x08048000
		ehsize  = 52 // sizeof(Elf32_Ehdr)
		phsize  = 32 // sizeof(Elf32_Phdr)
		headers = ehsize + phsize
	)
	size := uint32(headers + len(code))
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, elf.Header32{
		Ident:     [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS32), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)},
		Type:      uint16(elf.ET_EXEC),
		Machine:   uint16(elf.EM_386),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     base + headers,
		Phoff:     ehsize,
		Ehsize:    ehsize,
		Phentsize: phsize,
		Phnum:     1,
	})
	binary.Write(&b, binary.LittleEndian, elf.Prog32{
		Type: uint32(elf.PT_LOAD), Vaddr: base, Paddr: base,
		Filesz: size, Memsz: size, Flags: uint32(elf.PF_R | elf.PF_X), Align: 0x1000,
	})
	b.Write(code)
	return b.Bytes()
}

// runProbe runs the static program prog on the host (not in a step) and
// says how it ran, from its exit status: 0 native, 1 emulated. The program
// is passed as a file descriptor, so no file system needs to allow exec.
func runProbe(prog []byte) (probeResult, error) {
	f, err := programFile(prog)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	// The child execs its descriptor 3: an interpreter that binfmt_misc
	// starts without the O flag opens that path itself.
	p, err := os.StartProcess("/proc/self/fd/3", []string{"sxmake-platform-probe"},
		&os.ProcAttr{Files: []*os.File{null, null, null, f}})
	if errors.Is(err, syscall.ENOEXEC) {
		return probeNoExec, nil
	}
	if err != nil {
		return 0, fmt.Errorf("running the platform probe: %w", err)
	}
	st, err := p.Wait()
	if err != nil {
		return 0, err
	}
	switch st.ExitCode() {
	case 0:
		return probeNative, nil
	case 1:
		return probeEmulated, nil
	}
	return 0, fmt.Errorf("the platform probe failed: %v", st)
}

// programFile returns a read-only file holding prog: an executable memfd,
// or, where the kernel refuses those (vm.memfd_noexec=2), an unlinked
// temporary file.
func programFile(prog []byte) (*os.File, error) {
	f, err := system.ExecutableMemfd("sxmake-platform-probe", unix.MFD_CLOEXEC)
	if err == nil {
		if _, err := f.Write(prog); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	}
	tmp, err := os.CreateTemp("", "sxmake-platform-probe-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(prog)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o700)
	}
	if err != nil {
		return nil, err
	}
	// Executing a file still open for writing fails (ETXTBSY): reopen it.
	return os.Open(tmp.Name())
}
