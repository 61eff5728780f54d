// Package etcdbin provides real etcd and etcdctl binaries (version
// [Version]) to tests, built from the Go module proxy on first use and cached
// on disk, and a helper that runs a throw-away single-member etcd.
//
// Binaries are cached in $IGNETCD_BIN_CACHE/<Version>/ (default
// $HOME/.cache/ignetcd/bin/<Version>/). The first build takes about a minute
// per binary on a 2-core machine; later calls only stat the cached file. Builds
// are serialized across processes with flock(2) on <cache>/.lock and written to
// a temporary file that is renamed into place, so several test binaries may ask
// for the binaries concurrently.
//
// IGNETCD_ETCD_BIN and IGNETCD_ETCDCTL_BIN override the paths (no build).
//
// Why not "go install": go.etcd.io/etcd/server/v3 and etcdctl/v3 carry replace
// directives (../api etc.), which "go install mod@version" rejects. We copy the
// downloaded module to a temp dir, drop every replace directive (and the
// toolchain line), and "go build" its main package with -mod=mod there, never
// touching the caller's module.
package etcdbin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Version is the etcd release the binaries are built from.
const Version = "v3.6.16"

const (
	etcdModule    = "go.etcd.io/etcd/server/v3" // main package at module root
	etcdctlModule = "go.etcd.io/etcd/etcdctl/v3"
)

var (
	mu    sync.Mutex
	cache = map[string]string{}
)

// Etcd returns the path of an etcd server binary of [Version], building it if
// needed. It calls t.Fatal on failure.
func Etcd(t testing.TB) string {
	t.Helper()
	return binary(t, "etcd", "IGNETCD_ETCD_BIN", etcdModule)
}

// Etcdctl returns the path of an etcdctl binary of [Version], building it if
// needed. It calls t.Fatal on failure.
func Etcdctl(t testing.TB) string {
	t.Helper()
	return binary(t, "etcdctl", "IGNETCD_ETCDCTL_BIN", etcdctlModule)
}

// CacheDir returns the directory binaries are cached in.
func CacheDir() (string, error) {
	if d := os.Getenv("IGNETCD_BIN_CACHE"); d != "" {
		return filepath.Join(d, Version), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("etcdbin: no IGNETCD_BIN_CACHE and no home dir: %w", err)
	}
	return filepath.Join(home, ".cache", "ignetcd", "bin", Version), nil
}

func binary(t testing.TB, name, envVar, module string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("etcdbin: %s=%q: %v", envVar, p, err)
		}
		return p
	}
	mu.Lock()
	defer mu.Unlock()
	if p, ok := cache[name]; ok {
		return p
	}
	p, err := ensure(t, name, module)
	if err != nil {
		t.Fatalf("etcdbin: %s %s: %v", name, Version, err)
	}
	cache[name] = p
	return p
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 && fi.Size() > 0
}

func ensure(t testing.TB, name, module string) (string, error) {
	dir, err := CacheDir()
	if err != nil {
		return "", err
	}
	final := filepath.Join(dir, name)
	if isExecutable(final) {
		return final, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lf, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Logf("etcdbin: waiting for another process building into %s", dir)
		for {
			err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX)
			if err != syscall.EINTR {
				break
			}
		}
		if err != nil {
			return "", fmt.Errorf("flock: %w", err)
		}
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	if isExecutable(final) { // built by someone else meanwhile
		return final, nil
	}
	start := time.Now()
	t.Logf("etcdbin: building %s from %s@%s into %s (first time only; takes a minute or more)", name, module, Version, dir)
	if err := build(t, module, dir, final); err != nil {
		return "", err
	}
	t.Logf("etcdbin: built %s in %v", final, time.Since(start).Round(time.Second))
	return final, nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func buildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "GOFLAGS="), strings.HasPrefix(kv, "GOWORK="),
			strings.HasPrefix(kv, "CGO_ENABLED="), strings.HasPrefix(kv, "GO111MODULE="):
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off", "CGO_ENABLED=0", "GO111MODULE=on")
}

func runGo(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = dir
	cmd.Env = buildEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("go %s (in %s): %v\n%s%s", strings.Join(args, " "), dir, err, stdout.String(), stderr.String())
	}
	return stdout.Bytes(), nil
}

func build(t testing.TB, module, cacheDir, final string) error {
	work, err := os.MkdirTemp("", "ignetcd-etcdbin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// 1. Download the module (from the module cache or the proxy).
	t.Logf("etcdbin: go mod download %s@%s", module, Version)
	out, err := runGo(work, "mod", "download", "-json", module+"@"+Version)
	if err != nil {
		return err
	}
	var dl struct{ Dir, Error string }
	if err := json.Unmarshal(out, &dl); err != nil {
		return fmt.Errorf("parsing go mod download output: %v\n%s", err, out)
	}
	if dl.Error != "" || dl.Dir == "" {
		return fmt.Errorf("go mod download %s@%s: %s", module, Version, dl.Error)
	}

	// 2. Copy it somewhere writable.
	src := filepath.Join(work, "src")
	if err := copyTree(dl.Dir, src); err != nil {
		return fmt.Errorf("copying %s: %w", dl.Dir, err)
	}

	// 3. Drop replace directives and the toolchain line.
	out, err = runGo(src, "mod", "edit", "-json")
	if err != nil {
		return err
	}
	var mf struct {
		Replace []struct {
			Old struct{ Path, Version string }
		}
	}
	if err := json.Unmarshal(out, &mf); err != nil {
		return fmt.Errorf("parsing go mod edit -json: %v", err)
	}
	args := []string{"mod", "edit", "-toolchain=none"}
	for _, r := range mf.Replace {
		old := r.Old.Path
		if r.Old.Version != "" {
			old += "@" + r.Old.Version
		}
		args = append(args, "-dropreplace="+old)
	}
	if _, err := runGo(src, args...); err != nil {
		return err
	}

	// 4. Build into a temp file in the cache dir, then rename into place.
	tmp, err := os.CreateTemp(cacheDir, filepath.Base(final)+".tmp-*")
	if err != nil {
		return err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	buildArgs := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", tmp.Name(), "."}
	t.Logf("etcdbin: go build %s (replace directives dropped)", module)
	if _, err := runGo(src, buildArgs...); err != nil {
		t.Logf("etcdbin: build failed, retrying after go mod tidy in the copy: %v", err)
		if _, err := runGo(src, "mod", "tidy"); err != nil {
			return err
		}
		if _, err := runGo(src, buildArgs...); err != nil {
			return err
		}
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), final)
}

func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			outF, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return err
			}
			if _, err := io.Copy(outF, in); err != nil {
				outF.Close()
				return err
			}
			return outF.Close()
		default: // module zips contain no symlinks; ignore anything else
			return nil
		}
	})
}
