package etcdbin

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartEtcd starts a fresh single-member etcd ([Etcd]) listening on free
// loopback ports (client and peer) with a temporary data dir,
// --log-level=error, --unsafe-no-fsync and a 10ms/100ms heartbeat/election
// timeout (so the minimum lease TTL is 1s, not etcd's default 2s), waits until
// it is healthy (has a leader and serves reads), and stops it in t.Cleanup.
// extraArgs are appended to the command line (a repeated flag overrides an
// earlier one).
//
// It returns the client endpoint as "127.0.0.1:<port>", usable both as a
// clientv3 endpoint and as a gRPC dial target. Startup takes ~150ms.
// etcd's log goes to a file next to the data dir; its tail is printed if etcd
// exited on its own (crashed) before the cleanup.
func StartEtcd(t testing.TB, extraArgs ...string) (endpoint string) {
	t.Helper()
	bin := Etcd(t)
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		ep, err := startOnce(t, bin, extraArgs)
		if err == nil {
			return ep
		}
		lastErr = err
		if !errors.Is(err, errExitedEarly) {
			break
		}
		// Most likely a port race with another process; pick new ports.
	}
	t.Fatalf("etcdbin: starting etcd: %v", lastErr)
	return ""
}

var errExitedEarly = errors.New("etcd exited during startup")

// freePort returns a port that was free a moment ago. Ports are drawn from
// 20000-32767, below Linux's default ephemeral range, so outgoing connections
// don't grab them between our check and etcd's bind; a collision with another
// concurrent StartEtcd makes one etcd exit, and we retry.
func freePort() (int, error) {
	for i := 0; i < 100; i++ {
		p := 20000 + rand.IntN(12768)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		l.Close()
		return p, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startOnce(t testing.TB, bin string, extraArgs []string) (string, error) {
	cport, err := freePort()
	if err != nil {
		return "", err
	}
	pport, err := freePort()
	if err != nil {
		return "", err
	}
	if pport == cport {
		return "", fmt.Errorf("%w: same port picked twice", errExitedEarly)
	}
	base := t.TempDir()
	dataDir := filepath.Join(base, "data")
	logPath := filepath.Join(base, "etcd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", err
	}
	curl := fmt.Sprintf("http://127.0.0.1:%d", cport)
	purl := fmt.Sprintf("http://127.0.0.1:%d", pport)
	args := []string{
		"--name=default",
		"--data-dir=" + dataDir,
		"--listen-client-urls=" + curl,
		"--advertise-client-urls=" + curl,
		"--listen-peer-urls=" + purl,
		"--initial-advertise-peer-urls=" + purl,
		"--initial-cluster=default=" + purl,
		"--initial-cluster-state=new",
		"--log-level=error",
		"--unsafe-no-fsync",
		// A single member elects itself within one election timeout; the
		// default (1s) makes startup take 0.1-1s, this takes ~0.1s. Side
		// effect: etcd's minimum lease TTL becomes 1s instead of 2s.
		"--heartbeat-interval=10",
		"--election-timeout=100",
	}
	args = append(args, extraArgs...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = etcdEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return "", err
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logFile.Close()
		close(exited)
	}()
	stop := func() {
		select {
		case <-exited:
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}

	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			return "", fmt.Errorf("%w (%v); log:\n%s", errExitedEarly, cmd.ProcessState, tail(logPath))
		default:
		}
		if healthy(hc, curl) {
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("etcd not healthy after 60s; log:\n%s", tail(logPath))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Make sure it is our etcd that answered, not one that raced for the port.
	select {
	case <-exited:
		return "", fmt.Errorf("%w (%v); log:\n%s", errExitedEarly, cmd.ProcessState, tail(logPath))
	case <-time.After(20 * time.Millisecond):
	}
	t.Cleanup(func() {
		crashed := false
		select {
		case <-exited:
			crashed = true
		default:
		}
		stop()
		if crashed {
			t.Logf("etcdbin: etcd at %s (exited on its own: %v, %v); log tail:\n%s", curl, crashed, cmd.ProcessState, tail(logPath))
		}
	})
	return fmt.Sprintf("127.0.0.1:%d", cport), nil
}

func healthy(hc *http.Client, curl string) bool {
	resp, err := hc.Get(curl + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(string(b), `"health":"true"`)
}

// etcdEnv is the environment minus ETCD_* variables, which etcd would read as
// flags.
func etcdEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCD_") {
			env = append(env, kv)
		}
	}
	return env
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
