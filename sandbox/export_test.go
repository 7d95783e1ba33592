package sandbox

import (
	"errors"
	"os"
	"testing"
)

// ContainerRoot is where s keeps libcontainer's container state.
func ContainerRoot(s *Sandbox) string { return s.containers }

// RestoreBinfmtAfter removes platform's binfmt_misc entry when t ends if
// t's steps registered it on a host whose kernel runs the platform
// natively (WithEmulation does), so that the host's programs of that
// platform run natively again, as before t. An entry that existed before
// t, or that sxmake needs on this host anyway, is left alone.
func RestoreBinfmtAfter(t testing.TB, platform string) {
	t.Helper()
	p := normalizePlatform(platform)
	entry := binfmtDir + "/" + emulators[p].entry
	if _, err := os.Stat(entry); err == nil {
		return
	}
	platforms.mu.Lock()
	native, err := runsNatively(p)
	platforms.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if !native {
		return
	}
	t.Cleanup(func() {
		platforms.mu.Lock()
		defer platforms.mu.Unlock()
		if err := os.WriteFile(entry, []byte("-1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("removing %s: %v", entry, err)
		}
		delete(platforms.probed, p)
	})
}
