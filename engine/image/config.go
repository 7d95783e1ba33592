package image

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// DefaultPath is the PATH BuildKit gives a scratch image on Linux.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// HistoryComment is the comment BuildKit's Dockerfile frontend puts on each
// history entry.
const HistoryComment = "buildkit.dockerfile.v0"

// Config is an image config as BuildKit's Dockerfile frontend builds it (the
// Docker flavour of the OCI config). Field order and JSON tags follow the
// frontend's types, since the bytes of the nested "config" object are
// written in that order. A base image's config unmarshals into it; fields
// the frontend does not know are dropped, as BuildKit drops them.
type Config struct {
	Created      *time.Time      `json:"created,omitempty"`
	Author       string          `json:"author,omitempty"`
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	OSVersion    string          `json:"os.version,omitempty"`
	OSFeatures   []string        `json:"os.features,omitempty"`
	Variant      string          `json:"variant,omitempty"`
	RootFS       RootFS          `json:"rootfs"`
	History      []History       `json:"history,omitempty"`
	Config       ContainerConfig `json:"config,omitempty"`
}

// ContainerConfig is the "config" object of an image config.
type ContainerConfig struct {
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	Volumes      map[string]struct{} `json:"Volumes,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	ArgsEscaped  bool                `json:"ArgsEscaped,omitempty"`
	Healthcheck  *Healthcheck        `json:"Healthcheck,omitempty"`
	OnBuild      []string            `json:"OnBuild,omitempty"`
	Shell        []string            `json:"Shell,omitempty"`
}

// Healthcheck is the Docker HEALTHCHECK setting (StageX never sets it; it
// is here so that a base image's value survives).
type Healthcheck struct {
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// RootFS lists the diffIDs of an image's layers, bottom first.
type RootFS struct {
	Type    string   `json:"type"`
	DiffIDs []DiffID `json:"diff_ids"`
}

// History is one build step of an image.
type History struct {
	Created    *time.Time `json:"created,omitempty"`
	CreatedBy  string     `json:"created_by,omitempty"`
	Author     string     `json:"author,omitempty"`
	Comment    string     `json:"comment,omitempty"`
	EmptyLayer bool       `json:"empty_layer,omitempty"`
}

// NewConfig returns the config BuildKit starts a FROM scratch stage with:
// the platform, rootfs type "layers", WorkingDir "/" and the default PATH.
func NewConfig(p Platform) Config {
	return Config{
		Architecture: p.Architecture,
		OS:           p.OS,
		OSVersion:    p.OSVersion,
		OSFeatures:   p.OSFeatures,
		Variant:      p.Variant,
		RootFS:       RootFS{Type: "layers"},
		Config: ContainerConfig{
			WorkingDir: "/",
			Env:        []string{"PATH=" + DefaultPath},
		},
	}
}

// encodeConfig returns the config blob BuildKit's exporter writes for c
// with the given layers: c as the frontend marshals it, then patched as a
// JSON object (so top-level keys end up sorted) with rootfs set from
// diffIDs, history entries without a time given one (fillHistoryTimes),
// each history time after epoch set to epoch, and "created" clamped to
// epoch or, when c has none, taken from the last history entry. History
// entries equal to base's, from the first on, keep their times (BuildKit
// leaves base image history alone). epoch nil skips the clamping.
func encodeConfig(c Config, diffIDs []DiffID, epoch *time.Time, base *Config) ([]byte, error) {
	c.History = append([]History(nil), c.History...)
	dt, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(dt, &m); err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	set := func(k string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encoding config %s: %w", k, err)
		}
		m[k] = b
		return nil
	}
	if err := set("rootfs", RootFS{Type: "layers", DiffIDs: diffIDs}); err != nil {
		return nil, err
	}
	history := c.History
	if epoch != nil {
		fillHistoryTimes(history, epoch.Add(time.Second))
		diverged := false
		for i, h := range history {
			if !diverged && base != nil && i < len(base.History) && reflect.DeepEqual(h, base.History[i]) {
				continue
			}
			diverged = true
			if h.Created == nil || h.Created.After(*epoch) {
				history[i].Created = epoch
			}
		}
	}
	if err := set("history", history); err != nil {
		return nil, err
	}
	if c.Created != nil && epoch != nil && c.Created.After(*epoch) {
		if err := set("created", epoch); err != nil {
			return nil, err
		}
	}
	if _, ok := m["created"]; !ok {
		var last *time.Time
		for _, h := range history {
			if h.Created != nil {
				last = h.Created
			}
		}
		if err := set("created", last); err != nil {
			return nil, err
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return out, nil
}

// fillHistoryTimes gives each history entry without a time one, as
// BuildKit's exporter does before it clamps them to the epoch
// (normalizeLayersAndHistory): an entry with a layer gets the time the
// layer was made, here layerTime (BuildKit's is the time its cache made
// the layer, so always after the epoch, and then clamped to it); an empty
// one gets the time of the first timed entry after the first untimed one,
// or of the timed entry before it. A base image's entry given a time no
// longer equals the base's, so it and every entry after it are clamped.
func fillHistoryTimes(history []History, layerTime time.Time) {
	for i, h := range history {
		if !h.EmptyLayer && h.Created == nil {
			t := layerTime
			history[i].Created = &t
		}
	}
	var created *time.Time
	untimed := false
	for _, h := range history {
		if h.Created != nil {
			created = h.Created
			if untimed {
				break
			}
		} else {
			untimed = true
		}
	}
	untimed = false
	for i, h := range history {
		if h.Created != nil {
			if untimed {
				created = h.Created
			}
		} else {
			untimed = true
			history[i].Created = created
		}
	}
}
