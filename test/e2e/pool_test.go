package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// poolWS is workspace_create's result with the pool fields.
type poolWS struct {
	wsInfo
	FromPool  bool `json:"from_pool"`
	Resources struct {
		VCPUs    int `json:"vcpus"`
		MemoryMB int `json:"memory_mb"`
		DiskGB   int `json:"disk_gb"`
	} `json:"resources"`
}

// waitLog waits until the daemon's log holds more than n lines containing
// what, and returns how many it holds.
func waitLog(t testing.TB, d *daemon, what string, n int, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if c := strings.Count(d.Log(), what); c > n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not log %q (more than %d times) within %v:\n%s", what, n, within, d.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// layerStoreFiles lists the .qcow2 and .mem files left in the layer store.
func layerStoreFiles(t *testing.T, d *daemon) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(d.Dir, "data", "disks", "layers"))
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// TestCreateFromMemoryTemplate: the daemon saves a freshly booted VM once;
// default-size creates restore it instead of booting, and each comes out
// its own instance (hostname, machine-id, a reseeded RNG); a create of
// another size boots cold and says why; a restarted daemon reuses the
// template; destroying the workspaces leaves only the template's files.
func TestCreateFromMemoryTemplate(t *testing.T) {
	d := startDaemon(t, "\n[resources]\ndefault_memory_mb = 256\n\n[pool]\ntemplate = true\n")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	waitLog(t, d, "memory template built", 0, 5*time.Minute)
	s := d.client(ctx)

	ids := map[string]string{}
	rnd := map[string]string{}
	for _, name := range []string{"tmpl-a", "tmpl-b"} {
		start := time.Now()
		w := call[poolWS](ctx, t, s, "workspace_create", map[string]any{"name": name})
		t.Logf("%s from the template: boot_time_ms=%d, call %v", name, w.BootTimeMs, time.Since(start).Round(time.Millisecond))
		if got := sh(ctx, t, s, name, "hostname"); got != name {
			t.Errorf("%s: hostname %q", name, got)
		}
		ids[name] = sh(ctx, t, s, name, "cat /etc/machine-id")
		rnd[name] = sh(ctx, t, s, name, "head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'")
		sh(ctx, t, s, name, "echo mine-"+name+" > /root/own; sync")
	}
	if strings.Count(d.Log(), "from_template=true") != 2 {
		t.Errorf("the two default-size creates did not both restore the template:\n%s", d.Log())
	}
	if ids["tmpl-a"] == ids["tmpl-b"] || len(ids["tmpl-a"]) != 32 {
		t.Errorf("machine-ids %v: not distinct", ids)
	}
	if rnd["tmpl-a"] == rnd["tmpl-b"] {
		t.Errorf("both restored guests drew the same random bytes %s: the RNG was not reseeded", rnd["tmpl-a"])
	}
	// Each disk is its own: a write in one is not in the other.
	if got := sh(ctx, t, s, "tmpl-a", "cat /root/own"); got != "mine-tmpl-a" {
		t.Errorf("tmpl-a: /root/own = %q", got)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": "tmpl-b"})
	// A workspace made from the template also boots cold from its disk
	// (the template's frozen layer was never cleanly unmounted).
	call[map[string]any](ctx, t, s, "workspace_stop", map[string]any{"workspace_id": "tmpl-a"})
	call[map[string]any](ctx, t, s, "workspace_start", map[string]any{"workspace_id": "tmpl-a"})
	if got := sh(ctx, t, s, "tmpl-a", "cat /root/own; hostname; cat /etc/machine-id"); got != "mine-tmpl-a\ntmpl-a\n"+ids["tmpl-a"] {
		t.Errorf("tmpl-a after a stop and a cold start: %q", got)
	}

	// Another size: a cold boot, with the reason logged.
	w := call[poolWS](ctx, t, s, "workspace_create", map[string]any{"name": "tmpl-cold", "memory_mb": 320})
	if w.Resources.MemoryMB != 320 || !strings.Contains(d.Log(), "the memory template serves vcpus=") {
		t.Errorf("a 320 MiB create: %+v; no cold-boot reason logged", w)
	}
	got := sh(ctx, t, s, "tmpl-cold", "awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo")
	if mb, err := strconv.Atoi(got); err != nil || mb <= 256 || mb > 320 {
		t.Errorf("tmpl-cold MemTotal %q MiB, want 257..320", got)
	}
	t.Logf("cold create of another size: boot_time_ms=%d", w.BootTimeMs)
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": "tmpl-cold"})
	s.Close()

	// A restart keeps the template and the running workspace.
	d.stop()
	d.start()
	waitLog(t, d, "memory template loaded", 0, time.Minute)
	s = d.client(ctx)
	call[map[string]any](ctx, t, s, "workspace_adopt", map[string]any{})
	if got := sh(ctx, t, s, "tmpl-a", "cat /root/own"); got != "mine-tmpl-a" {
		t.Errorf("tmpl-a after a restart: /root/own = %q", got)
	}
	// from_pool without a pool: an ordinary create (here from the template).
	if w := call[poolWS](ctx, t, s, "workspace_create", map[string]any{"name": "tmpl-c", "from_pool": true}); w.FromPool || w.State != "running" {
		t.Errorf("from_pool with the pool disabled = %+v", w)
	}
	if !strings.Contains(d.Log(), "the warm pool is disabled (pool.enabled)") {
		t.Error("from_pool with the pool disabled logged no reason")
	}
	if n := strings.Count(d.Log(), "memory template built"); n != 1 {
		t.Errorf("the template was built %d times, want once", n)
	}
	if n := strings.Count(d.Log(), "from_template=true"); n != 3 {
		t.Errorf("%d creates restored the template, want 3", n)
	}
	checkLayerStore(ctx, t, d)
	for _, name := range []string{"tmpl-a", "tmpl-c"} {
		call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": name})
	}
	checkLayerStore(ctx, t, d)
	if files := layerStoreFiles(t, d); len(files) != 2 {
		t.Errorf("after every destroy the layer store holds %v, want the template's layer and memory state only", files)
	}
	if pids := d.QEMUPIDs(); len(pids) != 0 {
		t.Errorf("QEMU still running: %v", pids)
	}

	// A template made for something else (another image, guest, QEMU or
	// default size: its key differs) is stale: the next start drops it,
	// its files go, and a new one is built.
	s.Close()
	d.stop()
	old := layerStoreFiles(t, d)
	path := filepath.Join(d.Dir, "data", "templates", "template.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), `"key":"`, `"key":"0`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	d.start()
	waitLog(t, d, "memory template is stale", 0, time.Minute)
	waitLog(t, d, "memory template built", 1, 5*time.Minute)
	checkLayerStore(ctx, t, d)
	if files := layerStoreFiles(t, d); len(files) != 2 || slices.Contains(files, old[0]) || slices.Contains(files, old[1]) {
		t.Errorf("after the stale template was replaced the layer store holds %v (before: %v)", files, old)
	}
}

// TestH11_WarmPoolCountsAgainstMaxTotalVMs: workspace_create with
// from_pool claims a ready VM (the requested name and a fresh identity
// applied), the pool refills; a create of another size is not served by
// the pool but gets its size; pool VMs hold slots of vm.max_total_vms at
// run time, so when a create needs the pool's slot the pool gives it up
// first, and when no slot is left the create is refused naming the limit;
// a daemon killed with a ready pool VM reaps it at the next start; a
// stopped daemon drains its pool and leaves the workspaces running.
func TestH11_WarmPoolCountsAgainstMaxTotalVMs(t *testing.T) {
	d := startDaemonOpts(t, "", `
[resources]
default_memory_mb = 256
max_workspaces_per_session = 1

[pool]
enabled = true
size = 1
max_memory_mb = 256
template = true
`, daemonOpts{vm: "max_total_vms = 2\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	ready := waitLog(t, d, "pool VM ready", 0, 5*time.Minute)
	maxVMs := 0
	sample := func() {
		if n := len(d.QEMUPIDs()); n > maxVMs {
			maxVMs = n
		}
	}
	sample()

	a := d.client(ctx)
	start := time.Now()
	wa := call[poolWS](ctx, t, a, "workspace_create", map[string]any{"name": "pool-a", "from_pool": true})
	t.Logf("claim from the pool: boot_time_ms=%d, call %v", wa.BootTimeMs, time.Since(start).Round(time.Millisecond))
	if !wa.FromPool || wa.State != "running" {
		t.Fatalf("from_pool create = %+v", wa)
	}
	if got := sh(ctx, t, a, "pool-a", "hostname"); got != "pool-a" {
		t.Errorf("claimed VM hostname = %q", got)
	}
	sh(ctx, t, a, "pool-a", "echo precious > /root/data; sync")
	// The pool refills: one workspace and one pool VM, the cap.
	ready = waitLog(t, d, "pool VM ready", ready, 5*time.Minute)
	sample()

	// Another session, another size: the pool VM (default size) cannot
	// serve it, and its slot is what the create needs: the pool gives it
	// up and the create boots a VM of the requested size.
	b := d.client(ctx)
	wb := call[poolWS](ctx, t, b, "workspace_create", map[string]any{"name": "pool-b", "from_pool": true, "memory_mb": 320})
	sample()
	if wb.FromPool || wb.Resources.MemoryMB != 320 {
		t.Errorf("a 320 MiB from_pool create = %+v, want a cold boot of 320 MiB", wb)
	}
	if !strings.Contains(d.Log(), "pool VM given up to make room") {
		t.Errorf("the pool did not give up its VM for the create")
	}
	if n := len(d.QEMUPIDs()); n != 2 {
		t.Errorf("%d QEMUs with two workspaces and an emptied pool", n)
	}
	// No slot left: refused, naming the limit; nothing changes.
	c := d.client(ctx)
	msg := callErr(ctx, t, c, "workspace_create", map[string]any{"name": "pool-c", "from_pool": true})
	if !strings.Contains(msg, "vm.max_total_vms") {
		t.Errorf("a create over the VM maximum: %q", msg)
	}
	time.Sleep(2 * time.Second) // the filler must not squeeze a VM in either
	sample()
	if n := len(d.QEMUPIDs()); n != 2 {
		t.Errorf("%d QEMUs at the cap of 2", n)
	}
	call[map[string]any](ctx, t, b, "workspace_destroy", map[string]any{"workspace_id": "pool-b"})
	ready = waitLog(t, d, "pool VM ready", ready, 5*time.Minute)
	sample()

	// kill -9 with a ready pool VM: the next daemon reaps it (it has no
	// record) and boots a new one; the workspace runs on.
	before := d.QEMUPIDs()
	a.Close()
	b.Close()
	c.Close()
	d.kill()
	d.start()
	if !strings.Contains(d.Log(), "killing an orphan VM") {
		t.Errorf("the restarted daemon did not reap the pool VM")
	}
	waitLog(t, d, "pool VM ready", ready, 5*time.Minute)
	sample()
	after := d.QEMUPIDs()
	if len(after) != 2 {
		t.Errorf("after the restart %d QEMUs, want the workspace's and one pool VM", len(after))
	}
	kept := 0
	for _, p := range before {
		if slices.Contains(after, p) {
			kept++
		}
	}
	if kept != 1 {
		t.Errorf("QEMUs before the crash %v, after %v: want exactly the workspace's kept", before, after)
	}
	a = d.client(ctx)
	call[map[string]any](ctx, t, a, "workspace_adopt", map[string]any{})
	if got := sh(ctx, t, a, "pool-a", "cat /root/data"); got != "precious" {
		t.Errorf("pool-a after the crash: /root/data = %q", got)
	}
	a.Close()

	// A clean stop drains the pool; the workspace's VM outlives the daemon.
	d.stop()
	if n := len(d.QEMUPIDs()); n != 1 {
		t.Errorf("after a clean stop %d QEMUs, want only the workspace's", n)
	}
	d.start()
	a = d.client(ctx)
	call[map[string]any](ctx, t, a, "workspace_adopt", map[string]any{})
	call[map[string]any](ctx, t, a, "workspace_destroy", map[string]any{"workspace_id": "pool-a"})
	if maxVMs > 2 {
		t.Errorf("up to %d QEMUs ran at once; vm.max_total_vms is 2", maxVMs)
	}
	t.Logf("at most %d QEMUs at once", maxVMs)
}
