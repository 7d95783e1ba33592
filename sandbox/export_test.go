package sandbox

// ContainerRoot is where s keeps libcontainer's container state.
func ContainerRoot(s *Sandbox) string { return s.containers }

// RestoreNative386 is restoreNative386, for the external tests.
var RestoreNative386 = restoreNative386
