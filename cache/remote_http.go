package cache

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// NewHTTPRemote returns the remote cache served at base (http://HOST/PREFIX)
// by Bazel's HTTP remote-cache protocol: GET, HEAD and PUT of
// base/ac/<key hex> and base/cas/<sha256 hex>. Credentials for HOST come
// from Credentials.
func NewHTTPRemote(base string) (Remote, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	if u.User != nil {
		return nil, fmt.Errorf("credentials do not belong in the URL: use the docker config or SXMAKE_CACHE_AUTH")
	}
	if u.Host == "" {
		return nil, fmt.Errorf("no host")
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &bazelRemote{s: &httpStore{base: u.String(), host: u.Host, client: http.DefaultClient}, name: u.String()}, nil
}

type httpStore struct {
	base, host string
	client     *http.Client
}

func (h *httpStore) do(ctx context.Context, method, ns, name string, body io.Reader, size int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, h.base+"/"+ns+"/"+name, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
	}
	if user, pass, ok := Credentials(h.host); ok {
		req.SetBasicAuth(user, pass)
	}
	return h.client.Do(req)
}

func (h *httpStore) get(ctx context.Context, ns, name string) (io.ReadCloser, error) {
	resp, err := h.do(ctx, http.MethodGet, ns, name, nil, 0)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil, fmt.Errorf("%s/%s: %w", ns, name, ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s/%s: %s", ns, name, resp.Status)
	}
	return resp.Body, nil
}

func (h *httpStore) has(ctx context.Context, ns, name string) (bool, error) {
	resp, err := h.do(ctx, http.MethodHead, ns, name, nil, 0)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, fmt.Errorf("HEAD %s/%s: %s", ns, name, resp.Status)
}

func (h *httpStore) put(ctx context.Context, ns, name string, size int64, r io.Reader) error {
	resp, err := h.do(ctx, http.MethodPut, ns, name, io.NopCloser(r), size)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("PUT %s/%s: %s", ns, name, resp.Status)
	}
	return nil
}

// Credentials returns the user and password for host, from (first found)
// SXMAKE_CACHE_AUTH ("user:password", for every remote), the JSON of
// DOCKER_AUTH_CONFIG, or the docker config file ($DOCKER_CONFIG/config.json
// or ~/.docker/config.json), whose "auths" map a host to base64
// "user:password". Never from the command line.
func Credentials(host string) (user, pass string, ok bool) {
	if s := os.Getenv("SXMAKE_CACHE_AUTH"); s != "" {
		return strings.Cut(s, ":")
	}
	if s := os.Getenv("DOCKER_AUTH_CONFIG"); s != "" {
		if u, p, ok := dockerAuth([]byte(s), host); ok {
			return u, p, true
		}
	}
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "", false
		}
		dir = filepath.Join(home, ".docker")
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return "", "", false
	}
	return dockerAuth(data, host)
}

// dockerAuth finds host in a docker config's auths.
func dockerAuth(config []byte, host string) (string, string, bool) {
	var cfg struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
	}
	if json.Unmarshal(config, &cfg) != nil {
		return "", "", false
	}
	for _, k := range []string{host, "https://" + host, "http://" + host} {
		a, ok := cfg.Auths[k]
		if !ok {
			continue
		}
		if a.Username != "" {
			return a.Username, a.Password, true
		}
		dec, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			return "", "", false
		}
		return strings.Cut(string(dec), ":")
	}
	return "", "", false
}
