package rules

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Instructions that change only the image configuration.

// config evaluates the instructions that only change the image config.
func (ev *evaluator) config(s *stageState, in *Instruction) (*Step, error) {
	step := s.newStep(Config, in)
	img := &s.img
	switch c := in.cmd.(type) {
	case *envCmd:
		return step, ev.env(s, in, c, step)
	case *labelCmd:
		return step, ev.label(s, in, c, step)
	case *exposeCmd:
		return step, ev.expose(s, in, c, step)
	case *volumeCmd:
		return step, ev.volume(s, in, c, step)
	case *maintainerCmd:
		img.Author = c.name
		step.CreatedBy = "MAINTAINER " + c.name
	case *onbuildCmd:
		img.OnBuild = append(img.OnBuild, c.expression)
		step.NoHistory = true
	case *cmdCmd:
		ev.lint.usedOnce(&s.lastCmd, in)
		ev.jsonArgs(s, in, c.cmdLine)
		args := c.args
		if c.prependShell {
			args = shellArgs(s.img, args)
		}
		img.Cmd = args
		img.ArgsEscaped = true
		s.cmdSet = true
		step.CreatedBy = fmt.Sprintf("CMD %q", args)
	case *entrypointCmd:
		ev.lint.usedOnce(&s.lastEntry, in)
		ev.jsonArgs(s, in, c.cmdLine)
		args := c.args
		if c.prependShell {
			args = shellArgs(s.img, args)
		}
		img.Entrypoint = args
		if !s.cmdSet {
			img.Cmd = nil
		}
		step.CreatedBy = fmt.Sprintf("ENTRYPOINT %q", args)
	case *healthcheckCmd:
		ev.lint.usedOnce(&s.lastHealth, in)
		h := *c.health
		img.Healthcheck = &h
		step.CreatedBy = "HEALTHCHECK " + healthcheckString(img.Healthcheck)
	case *userCmd:
		u, err := ev.expand(s, in, c.user)
		if err != nil {
			return nil, err
		}
		img.User, s.user = u, u
		step.User = u
		step.CreatedBy = "USER " + u
	case *stopSignalCmd:
		sig, err := ev.expand(s, in, c.signal)
		if err != nil {
			return nil, err
		}
		if err := checkSignal(sig); err != nil {
			return nil, ev.f.errorf(in.Pos, "%v", err)
		}
		img.StopSignal = sig
		step.CreatedBy = "STOPSIGNAL " + sig
	case *shellCmd:
		img.Shell = slices.Clone(c.shell)
		step.Shell = slices.Clone(c.shell)
		step.CreatedBy = fmt.Sprintf("SHELL %v", c.shell)
	default:
		return nil, ev.f.errorf(in.Pos, "%s is not a command type", in.Cmd)
	}
	return step, nil
}

// jsonArgs checks a CMD or ENTRYPOINT in shell form run by the default
// shell, which does not pass signals on.
func (ev *evaluator) jsonArgs(s *stageState, in *Instruction, c cmdLine) {
	if c.prependShell && len(s.img.Shell) == 0 {
		ev.lint.on(checkJSONArgsRecommended, in, in.keyword)
	}
}

// addEnv sets k in an image env list, in place if present.
func addEnv(env []string, k, v string) []string {
	for i, e := range env {
		if key, _, _ := strings.Cut(e, "="); key == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}

var signals = map[string]bool{
	"ABRT": true, "ALRM": true, "BUS": true, "CHLD": true, "CLD": true, "CONT": true, "FPE": true,
	"HUP": true, "ILL": true, "INT": true, "IO": true, "IOT": true, "KILL": true, "PIPE": true,
	"POLL": true, "PROF": true, "PWR": true, "QUIT": true, "SEGV": true, "STKFLT": true,
	"STOP": true, "SYS": true, "TERM": true, "TRAP": true, "TSTP": true, "TTIN": true,
	"TTOU": true, "URG": true, "USR1": true, "USR2": true, "VTALRM": true, "WINCH": true,
	"XCPU": true, "XFSZ": true, "RTMIN": true, "RTMAX": true,
}

// checkSignal validates a STOPSIGNAL value (moby/sys/signal.ParseSignal).
func checkSignal(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n == 0 {
			return fmt.Errorf("invalid signal: %s", s)
		}
		return nil
	}
	name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
	if signals[name] {
		return nil
	}
	for _, base := range []string{"RTMIN+", "RTMAX-"} {
		if rest, ok := strings.CutPrefix(name, base); ok {
			if n, err := strconv.Atoi(rest); err == nil && n >= 1 && n <= 15 && strconv.Itoa(n) == rest {
				return nil
			}
		}
	}
	return fmt.Errorf("invalid signal: %s", s)
}

// splitPort splits an EXPOSE port spec "[[ip:]hostPort:]port[/proto]"
// as BuildKit does before it validates the parts.
func splitPort(raw string) (ip, hostPort, port, proto string, err error) {
	parts := strings.Split(raw, ":")
	var cport string
	switch n := len(parts); n {
	case 1:
		cport = parts[0]
	case 2:
		hostPort, cport = parts[0], parts[1]
	default:
		ip, hostPort, cport = strings.Join(parts[:n-2], ":"), parts[n-2], parts[n-1]
	}
	port, proto, _ = strings.Cut(cport, "/")
	if port == "" {
		return "", "", "", "", fmt.Errorf("invalid port: %q: no port specified", raw)
	}
	switch strings.ToLower(proto) {
	case "":
		proto = "tcp"
	case "tcp", "udp", "sctp":
	default:
		return "", "", "", "", fmt.Errorf("invalid port: %q: invalid proto: %s", raw, proto)
	}
	return ip, hostPort, port, proto, nil
}

// parsePort parses an EXPOSE port spec into "port/proto" entries.
func parsePort(raw string) ([]string, error) {
	ip, hostPort, port, proto, err := splitPort(raw)
	if err != nil {
		return nil, err
	}
	if ip != "" && ip[0] == '[' {
		h, _, err := net.SplitHostPort(ip + ":")
		if err != nil {
			return nil, fmt.Errorf("invalid IP address %v: %v", ip, err)
		}
		ip = h
	}
	if ip != "" && net.ParseIP(ip) == nil {
		return nil, fmt.Errorf("invalid IP address: %s", ip)
	}
	start, end, err := portRange(port)
	if err != nil {
		return nil, fmt.Errorf("invalid containerPort: %s", port)
	}
	if hostPort != "" {
		hs, he, err := portRange(hostPort)
		if err != nil {
			return nil, fmt.Errorf("invalid hostPort: %s", hostPort)
		}
		if end-start != he-hs && end != start {
			return nil, fmt.Errorf("invalid ranges specified for container and host Ports: %s and %s", port, hostPort)
		}
	}
	var out []string
	for p := start; p <= end; p++ {
		out = append(out, strconv.Itoa(p)+"/"+strings.ToLower(proto))
	}
	return out, nil
}

func portRange(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "-")
	start, err := portNumber(a)
	if err != nil {
		return 0, 0, err
	}
	if !ok || a == b {
		return start, start, nil
	}
	end, err := portNumber(b)
	if err != nil {
		return 0, 0, err
	}
	if end < start {
		return 0, 0, fmt.Errorf("invalid port range: %s", s)
	}
	return start, end, nil
}

func portNumber(s string) (int, error) {
	n, err := strconv.ParseInt(s, 10, 0)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > 65535 {
		return 0, fmt.Errorf("value out of range (0–65535)")
	}
	return int(n), nil
}

// healthcheckString formats h as fmt's %q verb formats BuildKit's
// *HealthcheckConfig (the HEALTHCHECK history text).
func healthcheckString(h *Healthcheck) string {
	d := func(v time.Duration) string { return strconv.Quote(v.String()) }
	r := rune(h.Retries)
	if h.Retries < 0 || h.Retries > utf8.MaxRune {
		r = utf8.RuneError
	}
	return fmt.Sprintf("&{%q %s %s %s %s %s}", h.Test, d(h.Interval), d(h.Timeout),
		d(h.StartPeriod), d(h.StartInterval), strconv.QuoteRune(r))
}

// env evaluates ENV; BuildKit expands every pair before applying any.
func (ev *evaluator) env(s *stageState, in *Instruction, c *envCmd, step *Step) error {
	img := &s.img
	msg := "ENV"
	var pairs []kv
	for _, e := range c.env {
		k, err := ev.expand(s, in, e.Key)
		if err != nil {
			return err
		}
		v, err := ev.expand(s, in, e.Value)
		if err != nil {
			return err
		}
		pairs = append(pairs, kv{Key: k, Value: v, NoDelim: e.NoDelim})
	}
	for _, p := range pairs {
		if p.NoDelim {
			ev.lint.on(checkLegacyKeyValueFormat, in, in.keyword)
		}
		ev.lint.secretName("ENV", p.Key, in)
		msg += " " + p.Key + "=" + p.Value
		s.env.set(p.Key, p.Value)
		img.Env = addEnv(img.Env, p.Key, p.Value)
	}
	step.CreatedBy = msg
	return nil
}

// label evaluates LABEL.
func (ev *evaluator) label(s *stageState, in *Instruction, c *labelCmd, step *Step) error {
	img := &s.img
	msg := "LABEL"
	var pairs []kv
	for _, l := range c.labels {
		k, err := ev.expand(s, in, l.Key)
		if err != nil {
			return err
		}
		v, err := ev.expand(s, in, l.Value)
		if err != nil {
			return err
		}
		pairs = append(pairs, kv{Key: k, Value: v, NoDelim: l.NoDelim})
	}
	if img.Labels == nil {
		img.Labels = map[string]string{}
	}
	for _, p := range pairs {
		if p.NoDelim {
			ev.lint.on(checkLegacyKeyValueFormat, in, in.keyword)
		}
		img.Labels[p.Key] = p.Value
		msg += " " + p.Key + "=" + p.Value
	}
	step.CreatedBy = msg
	return nil
}

// expose evaluates EXPOSE; BuildKit expands every port before parsing any.
func (ev *evaluator) expose(s *stageState, in *Instruction, c *exposeCmd, step *Step) error {
	img := &s.img
	var words []string
	for _, p := range c.ports {
		ws, err := ev.lx.words(p, s.env)
		if err != nil {
			return ev.f.errorf(in.Pos, "%v", err)
		}
		words = append(words, ws...)
	}
	var ports []string
	for _, w := range words {
		ev.lint.exposePort(in, w)
		ps, err := parsePort(w)
		if err != nil {
			return ev.f.errorf(in.Pos, "%v", err)
		}
		ports = append(ports, ps...)
	}
	for _, p := range ports {
		if !slices.Contains(img.ExposedPorts, p) {
			img.ExposedPorts = append(img.ExposedPorts, p)
		}
	}
	slices.Sort(img.ExposedPorts)
	step.CreatedBy = fmt.Sprintf("EXPOSE %v", ports)
	return nil
}

// volume evaluates VOLUME.
func (ev *evaluator) volume(s *stageState, in *Instruction, c *volumeCmd, step *Step) error {
	img := &s.img
	vols, err := ev.expandAll(s, in, c.volumes)
	if err != nil {
		return err
	}
	for _, v := range vols {
		if v == "" {
			return ev.f.errorf(in.Pos, "VOLUME specified can not be an empty string")
		}
		if !slices.Contains(img.Volumes, v) {
			img.Volumes = append(img.Volumes, v)
		}
	}
	slices.Sort(img.Volumes)
	step.CreatedBy = fmt.Sprintf("VOLUME %v", vols)
	return nil
}
