package sandbox

// ContainerRoot is where s keeps libcontainer's container state.
func ContainerRoot(s *Sandbox) string { return s.containers }
