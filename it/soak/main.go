// Command soak runs mixed etcd load with watchers, leases and client
// connections coming and going against ignetcd processes on the ignitetest
// double, and reports every interval each process's RSS, goroutines
// (go_goroutines from /metrics), open file descriptors and sockets, plus the
// double's Ignite connections. They must be flat after warm-up: leaking
// watches and threads sank an earlier Ignite shim.
//
//	it/soak/soak.sh                          # 30 minutes, one line a minute
//	it/soak/soak.sh -duration 5m -interval 30s
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/ignetcd/ignetcd/ignite/ignitetest"
)

var (
	duration = flag.Duration("duration", 30*time.Minute, "how long to run the load")
	interval = flag.Duration("interval", time.Minute, "how often to report")
	warmup   = flag.Duration("warmup", 2*time.Minute, "samples before this are not held to flatness")
	bin      = flag.String("bin", "", "the ignetcd binary (soak.sh builds it)")
	nodes    = flag.Int("nodes", 2, "ignetcd processes sharing the double")
	rate     = flag.Int("rate", 300, "KV operations per second, all writers together")
	writers  = flag.Int("writers", 8, "concurrent KV clients")
	watchers = flag.Int("watchers", 16, "watch loops, each opening and cancelling watches")
	keys     = flag.Int("keys", 2000, "key space size")
	seed     = flag.Int64("seed", 1, "random seed")
)

type node struct {
	name     string
	endpoint string
	cmd      *exec.Cmd
}

type counters struct {
	ops, errs, watchOpens, watchEvents, leases, clientsOpened atomic.Int64
	activeWatches                                             atomic.Int64
	revision                                                  atomic.Int64
}

func main() {
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "soak: -bin is required (run it/soak/soak.sh)")
		os.Exit(2)
	}
	double, err := ignitetest.Start(ignitetest.Options{})
	if err != nil {
		fatal(err)
	}
	defer double.Close()
	dir, err := os.MkdirTemp("", "ignetcd-soak-")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(dir)

	var ns []*node
	for i := 0; i < *nodes; i++ {
		n, err := startNode(dir, fmt.Sprintf("soak%d", i), double.Addr())
		if err != nil {
			fatal(err)
		}
		defer n.stop()
		ns = append(ns, n)
	}
	var eps []string
	for _, n := range ns {
		eps = append(eps, n.endpoint)
	}
	fmt.Printf("soak: %d ignetcd processes on the ignitetest double at %s; %d writers at %d ops/s over %d keys, %d watch loops; %v, a report every %v\n",
		len(ns), double.Addr(), *writers, *rate, *keys, *watchers, *duration, *interval)

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var c counters
	var wg sync.WaitGroup
	rng := rand.New(rand.NewSource(*seed))
	tick := time.NewTicker(time.Second / time.Duration(max(*rate, 1)))
	defer tick.Stop()
	permits := make(chan struct{}, *writers)
	go func() {
		for {
			select {
			case <-ctx.Done():
				close(permits)
				return
			case <-tick.C:
				select {
				case permits <- struct{}{}:
				default:
				}
			}
		}
	}()
	for i := 0; i < *writers; i++ {
		wg.Add(1)
		seed := rng.Int63()
		go func() { defer wg.Done(); writer(ctx, eps, seed, permits, &c) }()
	}
	for i := 0; i < *watchers; i++ {
		wg.Add(1)
		seed := rng.Int63()
		go func() { defer wg.Done(); watchLoop(ctx, eps, seed, &c) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); compactor(ctx, eps[0], &c) }()

	start := time.Now()
	var samples [][]sample
	report := func() {
		var row []sample
		var parts []string
		for _, n := range ns {
			s := n.sample()
			row = append(row, s)
			parts = append(parts, fmt.Sprintf("%s rss %5.1f MiB goroutines %4d fds %4d sockets %4d", n.name, float64(s.rssKiB)/1024, s.goroutines, s.fds, s.sockets))
		}
		samples = append(samples, row)
		fmt.Printf("[%6s] %s | ignite conns %d | ops %d errs %d rev %d | watches open %d opened %d events %d | leases %d clients opened %d\n",
			time.Since(start).Round(time.Second), strings.Join(parts, " | "), len(double.Conns()),
			c.ops.Load(), c.errs.Load(), c.revision.Load(), c.activeWatches.Load(), c.watchOpens.Load(), c.watchEvents.Load(), c.leases.Load(), c.clientsOpened.Load())
	}
	report()
	t := time.NewTicker(*interval)
	for done := false; !done; {
		select {
		case <-t.C:
			report()
		case <-ctx.Done():
			done = true
		}
	}
	t.Stop()
	wg.Wait()
	// Quiet period: what the load held must be released.
	time.Sleep(5 * time.Second)
	fmt.Print("after the load stopped (5s): ")
	report()
	verdict(samples, start)
}

// verdict compares samples after warm-up (the last one is the idle one).
func verdict(samples [][]sample, start time.Time) {
	first := -1
	for i := range samples {
		if time.Duration(i)**interval >= *warmup {
			first = i
			break
		}
	}
	if first < 0 || first >= len(samples)-2 {
		fmt.Println("verdict: run too short for a flatness verdict (needs samples after the warm-up)")
		return
	}
	loaded := samples[first : len(samples)-1]
	flat := true
	for n := range loaded[0] {
		minG, maxG, minR, maxR := int64(1<<62), int64(0), int64(1<<62), int64(0)
		minS, maxS := int64(1<<62), int64(0)
		for _, row := range loaded {
			s := row[n]
			minG, maxG = min(minG, s.goroutines), max(maxG, s.goroutines)
			minR, maxR = min(minR, s.rssKiB), max(maxR, s.rssKiB)
			minS, maxS = min(minS, s.sockets), max(maxS, s.sockets)
		}
		idle := samples[len(samples)-1][n]
		ok := maxG <= minG+minG/5+50 && maxR <= minR+minR/2 && maxS <= minS+minS/5+20
		flat = flat && ok
		fmt.Printf("verdict node %d after warm-up: goroutines %d..%d, RSS %.1f..%.1f MiB, sockets %d..%d; idle: %d goroutines, %d sockets — %s\n",
			n, minG, maxG, float64(minR)/1024, float64(maxR)/1024, minS, maxS, idle.goroutines, idle.sockets, map[bool]string{true: "flat", false: "GROWING"}[ok])
	}
	if !flat {
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "soak:", err)
	os.Exit(1)
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func startNode(dir, name, ignite string) (*node, error) {
	ep, err := freePort()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(*bin, "--name", name, "--listen-client-urls", "http://"+ep, "--ignite-endpoints", ignite,
		"--ignite-cache-prefix", "soak-", "--log-level", "warn", "--watch-progress-notify-interval", "5s")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	n := &node{name: name, endpoint: ep, cmd: cmd}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + ep + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return n, nil
			}
		}
		if time.Now().After(deadline) {
			n.stop()
			return nil, fmt.Errorf("%s did not become healthy: %v (log: %s)", name, err, logf.Name())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *node) stop() {
	n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
	}
}

type sample struct {
	rssKiB, goroutines, fds, sockets int64
}

func (n *node) sample() sample {
	var s sample
	pid := n.cmd.Process.Pid
	if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				s.rssKiB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			}
		}
		f.Close()
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = int64(len(ents))
		for _, e := range ents {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil && strings.HasPrefix(l, "socket:") {
				s.sockets++
			}
		}
	}
	if resp, err := http.Get("http://" + n.endpoint + "/metrics"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
				s.goroutines, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	return s
}

func newClient(eps ...string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialKeepAliveTime: 30 * time.Second, DialKeepAliveTimeout: 10 * time.Second})
}

// writer issues kube-apiserver-like traffic: creates, read-modify-write
// updates, deletes, lists of a prefix, and puts on short leases that
// expire. Every so often it drops its client and dials a new one.
func writer(ctx context.Context, eps []string, seed int64, permits <-chan struct{}, c *counters) {
	rng := rand.New(rand.NewSource(seed))
	var cli *clientv3.Client
	defer func() {
		if cli != nil {
			cli.Close()
		}
	}()
	val := make([]byte, 1024)
	for range permits {
		if cli == nil || rng.Intn(500) == 0 {
			if cli != nil {
				cli.Close()
			}
			var err error
			if cli, err = newClient(eps[rng.Intn(len(eps))]); err != nil {
				c.errs.Add(1)
				cli = nil
				continue
			}
			c.clientsOpened.Add(1)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := writerOp(rctx, cli, rng, val, c)
		cancel()
		c.ops.Add(1)
		if err != nil && ctx.Err() == nil {
			c.errs.Add(1)
		}
	}
}

func writerOp(ctx context.Context, cli *clientv3.Client, rng *rand.Rand, val []byte, c *counters) error {
	key := fmt.Sprintf("/registry/soak/%d/%d", rng.Intn(8), rng.Intn(*keys))
	rng.Read(val[:64+rng.Intn(960)])
	v := string(val[:64+rng.Intn(960)])
	var rev int64
	switch n := rng.Intn(100); {
	case n < 30: // update: read, then CAS on the mod revision
		g, err := cli.Get(ctx, key)
		if err != nil {
			return err
		}
		var mod int64
		if len(g.Kvs) > 0 {
			mod = g.Kvs[0].ModRevision
		}
		r, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", mod)).
			Then(clientv3.OpPut(key, v)).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return err
		}
		rev = r.Header.Revision
	case n < 50: // create
		r, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", 0)).Then(clientv3.OpPut(key, v)).Commit()
		if err != nil {
			return err
		}
		rev = r.Header.Revision
	case n < 60: // delete
		r, err := cli.Delete(ctx, key)
		if err != nil {
			return err
		}
		rev = r.Header.Revision
	case n < 65: // a page of a list
		r, err := cli.Get(ctx, fmt.Sprintf("/registry/soak/%d/", rng.Intn(8)), clientv3.WithPrefix(), clientv3.WithLimit(100))
		if err != nil {
			return err
		}
		rev = r.Header.Revision
	case n < 68: // a key on a short lease (expires and is deleted by the store)
		l, err := cli.Grant(ctx, int64(2+rng.Intn(8)))
		if err != nil {
			return err
		}
		c.leases.Add(1)
		r, err := cli.Put(ctx, "/registry/events/"+strconv.Itoa(rng.Intn(*keys)), v, clientv3.WithLease(l.ID))
		if err != nil {
			return err
		}
		rev = r.Header.Revision
	default: // a single-object get
		r, err := cli.Get(ctx, key)
		if err != nil {
			return err
		}
		rev = r.Header.Revision
	}
	for {
		cur := c.revision.Load()
		if rev <= cur || c.revision.CompareAndSwap(cur, rev) {
			return nil
		}
	}
}

// watchLoop opens a watch as kube-apiserver's reflectors do (prefix,
// prev_kv, progress notifications, hasleader), keeps it for a while,
// cancels it and starts over; now and then on a client of its own that it
// then closes.
func watchLoop(ctx context.Context, eps []string, seed int64, c *counters) {
	rng := rand.New(rand.NewSource(seed))
	shared, err := newClient(eps...)
	if err != nil {
		c.errs.Add(1)
		return
	}
	defer shared.Close()
	for ctx.Err() == nil {
		cli := shared
		if rng.Intn(3) == 0 {
			own, err := newClient(eps[rng.Intn(len(eps))])
			if err != nil {
				c.errs.Add(1)
				continue
			}
			c.clientsOpened.Add(1)
			cli = own
		}
		hold := time.Duration(200+rng.Intn(8000)) * time.Millisecond
		wctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), hold)
		prefix := fmt.Sprintf("/registry/soak/%d/", rng.Intn(8))
		opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithPrevKV(), clientv3.WithProgressNotify()}
		if rev := c.revision.Load(); rev > 10 && rng.Intn(2) == 0 {
			opts = append(opts, clientv3.WithRev(rev-int64(rng.Intn(10))))
		}
		c.watchOpens.Add(1)
		c.activeWatches.Add(1)
		for wr := range cli.Watch(wctx, prefix, opts...) {
			if err := wr.Err(); err != nil && !errors.Is(err, context.DeadlineExceeded) && wctx.Err() == nil {
				c.errs.Add(1)
			}
			c.watchEvents.Add(int64(len(wr.Events)))
		}
		c.activeWatches.Add(-1)
		cancel()
		if cli != shared {
			cli.Close()
		}
	}
}

// compactor is kube-apiserver's: every 30s, compact to the revision seen
// on the previous tick.
func compactor(ctx context.Context, ep string, c *counters) {
	cli, err := newClient(ep)
	if err != nil {
		c.errs.Add(1)
		return
	}
	defer cli.Close()
	var prev int64
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if prev > 0 {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			cli.Compact(cctx, prev)
			cancel()
		}
		prev = c.revision.Load()
	}
}
