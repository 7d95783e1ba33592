package sandboxtest

// probeSource is the probe, a static program run inside steps by the
// tests. Usage: probe COMMAND ARGS... Commands:
//
//	exit N          exit with status N
//	dial ADDR       print "connected" and exit 0 if a TCP connection to
//	                ADDR succeeds, else print the error and exit 1
//	ifaces          print the network interfaces, one a line
//	env             print the environment, one variable a line
//	umask           print the umask in octal
//	hostname        print the hostname
//	zone            print the local time zone's name and offset
//	cat PATH        print the file PATH; exit 1 when it cannot be read
//	write PATH TEXT write TEXT to PATH; exit 1 on error
//	ls PATH         print the names in directory PATH; exit 1 on error
//	sleep SECONDS   sleep
//	spawn N         start N children that sleep an hour, then sleep an hour
//	spawn-try N     start up to N such children, stop at the first failure,
//	                and exit 0
//	clocks          print CLOCK_MONOTONIC and CLOCK_BOOTTIME in whole seconds
//	alloc MIB       allocate and touch MIB mebibytes, then print "ok"
//	keyctl          print "ok" if keyctl(2) works, else its error
//	socket FAMILY   print "ok" if socket(FAMILY, SOCK_STREAM or, failing
//	                that, SOCK_SEQPACKET, 0) works, else the first error
//	arch            print GOARCH
//	uid             print uid:gid and the supplementary groups
const probeSource = `package main

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: probe COMMAND ARGS...")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "exit":
		n, _ := strconv.Atoi(args[0])
		os.Exit(n)
	case "dial":
		c, err := net.DialTimeout("tcp", args[0], 2*time.Second)
		if err != nil {
			fail(err.Error())
		}
		c.Close()
		fmt.Println("connected")
	case "ifaces":
		ifs, err := net.Interfaces()
		if err != nil {
			fail(err.Error())
		}
		for _, i := range ifs {
			fmt.Println(i.Name)
		}
	case "env":
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
	case "umask":
		m := syscall.Umask(0)
		fmt.Printf("%04o\n", m)
	case "hostname":
		h, err := os.Hostname()
		if err != nil {
			fail(err.Error())
		}
		fmt.Println(h)
	case "zone":
		name, off := time.Now().Zone()
		fmt.Println(name, off)
	case "cat":
		b, err := os.ReadFile(args[0])
		if err != nil {
			fail(err.Error())
		}
		os.Stdout.Write(b)
	case "write":
		if err := os.WriteFile(args[0], []byte(args[1]), 0o644); err != nil {
			fail(err.Error())
		}
	case "ls":
		es, err := os.ReadDir(args[0])
		if err != nil {
			fail(err.Error())
		}
		for _, e := range es {
			fmt.Println(e.Name())
		}
	case "sleep":
		s, _ := strconv.Atoi(args[0])
		time.Sleep(time.Duration(s) * time.Second)
	case "spawn":
		n, _ := strconv.Atoi(args[0])
		for i := 0; i < n; i++ {
			p, err := os.StartProcess("/proc/self/exe", []string{"probe", "sleep", "3600"}, &os.ProcAttr{})
			if err != nil {
				fail(err.Error())
			}
			fmt.Println("child", p.Pid)
		}
		time.Sleep(time.Hour)
	case "spawn-try":
		n, _ := strconv.Atoi(args[0])
		for i := 0; i < n; i++ {
			if _, err := os.StartProcess("/proc/self/exe", []string{"probe", "sleep", "3600"}, &os.ProcAttr{}); err != nil {
				fmt.Println(err)
				break
			}
		}
	case "clocks":
		fmt.Println(clock(1), clock(7))
	case "alloc":
		n, _ := strconv.Atoi(args[0])
		var keep [][]byte
		for i := 0; i < n; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("ok", len(keep))
	case "keyctl":
		// KEYCTL_GET_KEYRING_ID of KEY_SPEC_SESSION_KEYRING.
		_, _, e := syscall.Syscall(syscall.SYS_KEYCTL, 0, ^uintptr(2), 0)
		if e != 0 {
			fmt.Println(e.Error())
			return
		}
		fmt.Println("ok")
	case "socket":
		family, _ := strconv.Atoi(args[0])
		fd, err := syscall.Socket(family, syscall.SOCK_STREAM, 0)
		if err != nil {
			fd, _ = syscall.Socket(family, syscall.SOCK_SEQPACKET, 0)
		}
		if fd < 0 {
			fmt.Println(err.Error())
			return
		}
		syscall.Close(fd)
		fmt.Println("ok")
	case "arch":
		fmt.Println(runtime.GOARCH)
	case "uid":
		gs, _ := syscall.Getgroups()
		fmt.Println(fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()), gs)
	default:
		fail("unknown command " + os.Args[1])
	}
}

// clock returns clock id's whole seconds (1 CLOCK_MONOTONIC, 7 CLOCK_BOOTTIME).
func clock(id uintptr) int64 {
	var ts syscall.Timespec
	if _, _, e := syscall.Syscall(syscall.SYS_CLOCK_GETTIME, id, uintptr(unsafe.Pointer(&ts)), 0); e != 0 {
		fail(e.Error())
	}
	return int64(ts.Sec)
}

func fail(msg string) {
	fmt.Println(msg)
	os.Exit(1)
}
`
