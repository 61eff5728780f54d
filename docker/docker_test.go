package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/ignetcd/ignetcd/cmd/ignetcd/config"
	"github.com/ignetcd/ignetcd/embed"
	"github.com/ignetcd/ignetcd/it/etcdbin"
	"github.com/ignetcd/ignetcd/memengine"
	"github.com/ignetcd/ignetcd/server"
)

// composeFile is the part of the compose specification the demo uses.
type composeFile struct {
	Name     string
	Services map[string]service
}

type service struct {
	Image string
	Build *struct {
		Context, Dockerfile, Target string
	}
	Command     []string
	Environment map[string]string
	Ports       []string
	DependsOn   any `yaml:"depends_on"` // a list of names, or name → {condition}
	Healthcheck *struct{ Test []string }
	Restart     string
}

// dependsOn returns the service's dependencies and their conditions
// ("service_started" for the list form).
func (s service) dependsOn(t *testing.T) map[string]string {
	deps := map[string]string{}
	switch d := s.DependsOn.(type) {
	case nil:
	case []any:
		for _, name := range d {
			deps[fmt.Sprint(name)] = "service_started"
		}
	case map[string]any:
		for name, spec := range d {
			cond, _ := spec.(map[string]any)["condition"].(string)
			deps[name] = cond
		}
	default:
		t.Fatalf("depends_on: unexpected form %T", d)
	}
	return deps
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return c
}

// stage is one FROM section of the Dockerfile.
type stage struct {
	image, name string
	lines       []string // instructions after FROM, continuation lines joined
}

func loadDockerfile(t *testing.T) []stage {
	t.Helper()
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []stage
	var pending string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending += strings.TrimSuffix(line, "\\") + " "
			continue
		}
		line, pending = pending+line, ""
		fields := strings.Fields(line)
		if strings.EqualFold(fields[0], "FROM") {
			st := stage{image: fields[1]}
			if len(fields) == 4 && strings.EqualFold(fields[2], "AS") {
				st.name = fields[3]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %q before the first FROM", line)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return stages
}

func findStage(t *testing.T, stages []stage, name string) stage {
	t.Helper()
	for _, st := range stages {
		if st.name == name {
			return st
		}
	}
	t.Fatalf("Dockerfile has no stage %q", name)
	return stage{}
}

// instruction returns the arguments of the stage's last instruction kw.
func (st stage) instruction(kw string) (string, bool) {
	found, args := false, ""
	for _, l := range st.lines {
		if f := strings.SplitN(l, " ", 2); strings.EqualFold(f[0], kw) && len(f) == 2 {
			found, args = true, strings.TrimSpace(f[1])
		}
	}
	return args, found
}

// execForm decodes a JSON-array (exec form) instruction argument.
func execForm(t *testing.T, kw, args string) []string {
	t.Helper()
	var out []string
	if err := json.Unmarshal([]byte(args), &out); err != nil {
		t.Fatalf("Dockerfile %s %s: want the exec (JSON array) form: %v", kw, args, err)
	}
	return out
}

// parseIgnetcd checks args against the binary's flags and returns what they
// configure.
func parseIgnetcd(t *testing.T, where string, args []string) *config.Settings {
	t.Helper()
	for _, a := range args {
		if !strings.HasPrefix(a, "--") || !strings.Contains(a, "=") {
			t.Errorf("%s: argument %q: write flags as --name=value", where, a)
		}
	}
	s, err := config.Parse(args)
	if err != nil {
		t.Fatalf("%s: ignetcd rejects its arguments %q: %v", where, args, err)
	}
	return s
}

func TestDockerfile(t *testing.T) {
	stages := loadDockerfile(t)

	build := findStage(t, stages, "build")
	goMod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(goMod)
	if !strings.HasPrefix(build.image, "golang:") || goVersion == nil || !versionAtLeast(strings.TrimPrefix(build.image, "golang:"), string(goVersion[1])) {
		t.Errorf("build stage image %s: want golang at least go.mod's %s", build.image, goVersion[1])
	}
	run, _ := build.instruction("RUN")
	if !strings.Contains(run, "CGO_ENABLED=0") || !strings.Contains(run, "go build") || !strings.Contains(run, "./cmd/ignetcd") {
		t.Errorf("build stage's last RUN %q: want a static (CGO_ENABLED=0) go build of ./cmd/ignetcd", run)
	}
	for _, l := range build.lines {
		if f := strings.Fields(l); strings.EqualFold(f[0], "COPY") && !strings.HasPrefix(f[1], "--") {
			for _, src := range f[1 : len(f)-1] {
				if _, err := os.Stat(filepath.Join("..", src)); err != nil {
					t.Errorf("Dockerfile copies %s, missing from the build context (the repository root): %v", src, err)
				}
			}
		}
	}

	final := stages[len(stages)-1]
	if final.name != "ignetcd" {
		t.Errorf("the last (default) stage is %q, want ignetcd", final.name)
	}
	for _, st := range []stage{final, findStage(t, stages, "demo-client")} {
		user, ok := st.instruction("USER")
		if uid := strings.Split(user, ":")[0]; !ok || uid == "root" || uid == "0" {
			t.Errorf("stage %s runs as %q, want a non-root USER", st.name, user)
		}
	}
	entry, _ := final.instruction("ENTRYPOINT")
	if ep := execForm(t, "ENTRYPOINT", entry); len(ep) != 1 || filepath.Base(ep[0]) != "ignetcd" {
		t.Errorf("ENTRYPOINT %v, want the ignetcd binary alone", ep)
	}
	copied := false
	for _, l := range final.lines {
		copied = copied || strings.HasPrefix(l, "COPY --from=build ") && strings.HasSuffix(l, " /usr/local/bin/ignetcd")
	}
	if !copied {
		t.Error("the final stage does not copy the binary from the build stage to /usr/local/bin/ignetcd")
	}
	cmd, _ := final.instruction("CMD")
	s := parseIgnetcd(t, "Dockerfile CMD", execForm(t, "CMD", cmd))
	expose, _ := final.instruction("EXPOSE")
	for _, u := range s.Node.ListenClientURLs {
		if port := urlPort(t, u); !slices.Contains(strings.Fields(expose), port) {
			t.Errorf("CMD listens on %s, but EXPOSE is %q", u, expose)
		}
	}
	if etcd := findStage(t, stages, "etcd"); !strings.HasSuffix(etcd.image, ":v"+server.Version) {
		t.Errorf("etcdctl comes from %s, want etcd v%s, the version ignetcd reports", etcd.image, server.Version)
	}
}

// versionAtLeast compares "major.minor[...]" prefixes.
func versionAtLeast(have, want string) bool {
	parse := func(v string) (int, int) {
		f := strings.SplitN(v, ".", 3)
		if len(f) < 2 {
			return 0, 0
		}
		major, _ := strconv.Atoi(f[0])
		minor, _ := strconv.Atoi(strings.TrimRightFunc(f[1], func(r rune) bool { return r < '0' || r > '9' }))
		return major, minor
	}
	hm, hn := parse(have)
	wm, wn := parse(want)
	return hm > wm || hm == wm && hn >= wn
}

func urlPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Port() == "" {
		t.Fatalf("URL %q has no port", raw)
	}
	return u.Port()
}

func TestCompose(t *testing.T) {
	c := loadCompose(t)
	stages := loadDockerfile(t)
	var names []string
	for name := range c.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	if want := []string{"etcdctl", "ignetcd-1", "ignetcd-2", "ignite"}; !slices.Equal(names, want) {
		t.Fatalf("services %v, want %v", names, want)
	}

	ignite := c.Services["ignite"]
	if !regexp.MustCompile(`^apacheignite/ignite:2\.\d+\.\d+$`).MatchString(ignite.Image) {
		t.Errorf("ignite image %q, want the official apacheignite/ignite:2.x.y", ignite.Image)
	}
	if ignite.Healthcheck == nil || !strings.Contains(strings.Join(ignite.Healthcheck.Test, " "), "10800") {
		t.Errorf("ignite needs a health check on the thin-client port 10800: %+v", ignite.Healthcheck)
	}

	hostPorts := map[string]string{}
	for _, name := range []string{"ignetcd-1", "ignetcd-2"} {
		svc := c.Services[name]
		where := "service " + name
		if svc.Build == nil || svc.Build.Context != ".." || svc.Build.Dockerfile != "docker/Dockerfile" || svc.Build.Target != "ignetcd" {
			t.Errorf("%s: build %+v, want context .., docker/Dockerfile, target ignetcd", where, svc.Build)
		}
		s := parseIgnetcd(t, where, svc.Command)
		for key := range svc.Environment {
			flagName := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(key, config.EnvPrefix+"_"), "_", "-"))
			if !strings.HasPrefix(key, config.EnvPrefix+"_") || config.NewFlagSet().Lookup(flagName) == nil {
				t.Errorf("%s: environment %s names no ignetcd flag", where, key)
			}
		}
		if s.Node.Name != name {
			t.Errorf("%s: --name=%s, want the service name", where, s.Node.Name)
		}
		for _, ep := range s.Node.IgniteEndpoints {
			host, port, err := net.SplitHostPort(ep)
			if err != nil || c.Services[host].Image != ignite.Image || port != "10800" {
				t.Errorf("%s: --ignite-endpoints %s, want ignite:10800", where, ep)
			}
		}
		if len(s.Node.IgniteEndpoints) == 0 {
			t.Errorf("%s: no --ignite-endpoints: it would run on the in-memory engine", where)
		}
		if len(s.Node.ListenClientURLs) != 1 || len(svc.Ports) != 1 {
			t.Fatalf("%s: want one client URL and one published port, got %v and %v", where, s.Node.ListenClientURLs, svc.Ports)
		}
		listenURL, _ := url.Parse(s.Node.ListenClientURLs[0])
		if listenURL.Hostname() != "0.0.0.0" {
			t.Errorf("%s: listens on %s; in a container it must listen on 0.0.0.0 to be reachable", where, listenURL.Host)
		}
		mapping := strings.Split(svc.Ports[0], ":")
		if len(mapping) != 2 || mapping[1] != urlPort(t, s.Node.ListenClientURLs[0]) {
			t.Errorf("%s: publishes %q, want host:%s", where, svc.Ports[0], urlPort(t, s.Node.ListenClientURLs[0]))
		}
		if other, dup := hostPorts[mapping[0]]; dup {
			t.Errorf("%s and %s both publish host port %s", other, name, mapping[0])
		}
		hostPorts[mapping[0]] = name
		for _, adv := range s.Node.AdvertiseClientURLs {
			if u, _ := url.Parse(adv); u.Hostname() != name {
				t.Errorf("%s: advertises %s, want a URL with its own service name", where, adv)
			}
		}
		if cond := svc.dependsOn(t)["ignite"]; cond != "service_healthy" {
			t.Errorf("%s: depends on ignite with %q, want service_healthy", where, cond)
		}
		if svc.Restart != "on-failure" {
			t.Errorf("%s: restart %q, want on-failure (it exits when Ignite is unreachable)", where, svc.Restart)
		}
	}

	ctl := c.Services["etcdctl"]
	if ctl.Build == nil || ctl.Build.Target != "demo-client" {
		t.Fatalf("etcdctl: build %+v, want the Dockerfile's demo-client target", ctl.Build)
	}
	findStage(t, stages, ctl.Build.Target)
	deps := ctl.dependsOn(t)
	script := strings.Join(ctl.Command, "\n")
	for _, name := range []string{"ignetcd-1", "ignetcd-2"} {
		if _, ok := deps[name]; !ok {
			t.Errorf("etcdctl does not depend on %s", name)
		}
		if !strings.Contains(script, name+":2379") {
			t.Errorf("the etcdctl script never talks to %s:2379", name)
		}
	}
	for _, verb := range []string{" put ", " get ", " watch "} {
		if !strings.Contains(script, verb) {
			t.Errorf("the etcdctl script does not%s", verb)
		}
	}
}

// TestDemoScript runs the compose file's etcdctl script, as it stands,
// against two in-process ignetcd nodes sharing one keyspace (the in-memory
// engine standing in for Ignite), with the real etcdctl.
func TestDemoScript(t *testing.T) {
	ctl := loadCompose(t).Services["etcdctl"]
	if len(ctl.Command) != 1 {
		t.Fatalf("etcdctl command: want one script, got %d items", len(ctl.Command))
	}
	etcdctl := etcdbin.Etcdctl(t)
	eng := memengine.New()
	t.Cleanup(func() { eng.Close() })
	script := strings.ReplaceAll(ctl.Command[0], "$$", "$")
	script = strings.ReplaceAll(script, "timeout 15 ", "timeout 4 ") // the watch's lifetime, shortened
	for _, name := range []string{"ignetcd-1", "ignetcd-2"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n, err := embed.Start(ctx, embed.Config{
			Name: name, ListenClientURLs: []string{"http://127.0.0.1:0"}, Engine: eng,
			Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel),
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Close)
		script = strings.ReplaceAll(script, name+":2379", n.Endpoints()[0])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(etcdctl)+string(os.PathListSeparator)+os.Getenv("PATH"))
	for k, v := range ctl.Environment {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "demo OK") {
		t.Fatalf("the demo script failed: %v\n%s", err, out)
	}
}
