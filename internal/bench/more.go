package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/testdaemon"
)

// snapshots times snapshot create (disk, memory), fork from each kind,
// restore of each kind, on the bench workspace; every fork is destroyed
// right after it is made, so at most two VMs run at once.
func (r *run) snapshots(ctx context.Context) error {
	snap := func(name string, memory bool) (float64, error) {
		start := time.Now()
		_, err := testdaemon.Call[map[string]any](ctx, r.s, "snapshot", map[string]any{"workspace_id": r.ws,
			"action": "create", "name": name, "include_memory": memory})
		return ms(time.Since(start)), err
	}
	restore := func(name string) (float64, error) {
		start := time.Now()
		_, err := testdaemon.Call[map[string]any](ctx, r.s, "snapshot", map[string]any{"workspace_id": r.ws,
			"action": "restore", "name": name})
		return ms(time.Since(start)), err
	}
	fork := func(snapName, newName string) (float64, error) {
		start := time.Now()
		f, err := testdaemon.Call[wsResult](ctx, r.s, "workspace_fork", map[string]any{"workspace_id": r.ws,
			"snapshot_name": snapName, "new_name": newName})
		took := ms(time.Since(start))
		if err != nil {
			return 0, err
		}
		return took, r.destroy(ctx, f.ID)
	}
	n := r.plan.snaps
	var snapDisk, snapMem, forkDisk, forkMem, resMem, resDisk []float64
	for i := range n {
		t, err := snap(fmt.Sprintf("disk-%d", i), false)
		if err != nil {
			return err
		}
		snapDisk = append(snapDisk, t)
	}
	for i := range n {
		t, err := snap(fmt.Sprintf("mem-%d", i), true)
		if err != nil {
			return err
		}
		snapMem = append(snapMem, t)
	}
	for i := range n {
		t, err := fork("disk-0", fmt.Sprintf("fork-disk-%d", i))
		if err != nil {
			return err
		}
		forkDisk = append(forkDisk, t)
	}
	for i := range n {
		t, err := fork("mem-0", fmt.Sprintf("fork-mem-%d", i))
		if err != nil {
			return err
		}
		forkMem = append(forkMem, t)
	}
	// Restoring a snapshot removes the ones taken after it: restore the
	// last memory snapshot n times, then the last disk snapshot n times.
	for range n {
		t, err := restore(fmt.Sprintf("mem-%d", n-1))
		if err != nil {
			return err
		}
		resMem = append(resMem, t)
	}
	for range n {
		t, err := restore(fmt.Sprintf("disk-%d", n-1))
		if err != nil {
			return err
		}
		resDisk = append(resDisk, t)
	}
	bootFloor, _ := r.find(FigColdBoot)
	r.add(newFigure(FigSnapDisk, "ms", snapDisk))
	r.add(newFigure(FigSnapMem, "ms", snapMem))
	r.add(newFigure(FigForkDisk, "ms", forkDisk).withFloor(bootFloor))
	r.add(newFigure(FigForkMem, "ms", forkMem).withFloor(bootFloor))
	r.add(newFigure(FigRestoreMem, "ms", resMem))
	r.add(newFigure(FigRestoreDisk, "ms", resDisk))
	return nil
}

func (r *run) find(name string) (Figure, bool) {
	for _, f := range r.figs {
		if f.Name == name {
			return f, true
		}
	}
	return Figure{}, false
}

// idleMemory brings the number of running VMs up to each count in turn,
// lets them settle, and reads the daemon's RSS, each QEMU's proportional
// set size (its shared libraries split between the QEMUs) and each guest's
// own count of the memory it uses, the floor a VM's host memory is
// compared to.
func (r *run) idleMemory(ctx context.Context) error {
	counts := slices.Clone(r.plan.idle)
	slices.Sort(counts)
	running := []string{r.ws}
	defer func() {
		for _, id := range running[1:] {
			_ = r.destroy(ctx, id)
		}
	}()
	for _, n := range counts {
		for len(running) < n {
			w, _, err := r.create(ctx, fmt.Sprintf("idle-%d", len(running)))
			if err != nil {
				return err
			}
			running = append(running, w.ID)
		}
		time.Sleep(3 * time.Second) // let the newest guest go idle
		var daemonRSS, vmPSS, vmAnon, guestWS []float64
		for range 3 {
			kb, err := procKB(fmt.Sprintf("/proc/%d/status", r.d.PID()), "VmRSS:")
			if err != nil {
				return err
			}
			daemonRSS = append(daemonRSS, kb/1024)
			time.Sleep(300 * time.Millisecond)
		}
		pids := r.d.QEMUPIDs()
		if len(pids) != n {
			return fmt.Errorf("%d VMs should run, found %d QEMU processes", n, len(pids))
		}
		for _, pid := range pids {
			kb, err := procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
			if err != nil {
				return err
			}
			vmPSS = append(vmPSS, kb/1024)
			anon, err := procKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss_Anon:")
			if err != nil {
				return err
			}
			vmAnon = append(vmAnon, anon/1024)
		}
		for _, id := range running[:n] {
			res, err := testdaemon.Call[struct {
				Stdout string `json:"stdout"`
			}](ctx, r.s, "exec", map[string]any{"workspace_id": id, "command": "cat /proc/meminfo"})
			if err != nil {
				return err
			}
			total, avail := meminfoKB(res.Stdout, "MemTotal:"), meminfoKB(res.Stdout, "MemAvailable:")
			guestWS = append(guestWS, (total-avail)/1024)
		}
		r.add(newFigure(FigDaemonRSS(n), "MiB", daemonRSS))
		gws := newFigure(FigGuestWorkingSet(n), "MiB", guestWS)
		r.add(newFigure(FigVMMemory(n), "MiB", vmPSS).withFloor(gws))
		r.add(newFigure(FigVMAnon(n), "MiB", vmAnon).withFloor(gws))
		r.add(gws)
	}
	return nil
}

// list fills the state DB with 100 stopped workspaces of another session
// (the daemon is stopped meanwhile), and times workspace_list, which shows
// root every one of them. It comes last: those rows hold VM slots
// (vm.max_total_vms) a later create would need.
func (r *run) list(ctx context.Context) error {
	if err := r.d.Stop(); err != nil {
		return err
	}
	r.s.Close()
	r.s = nil
	if err := fillDB(ctx, r.d.StatePath(), r.plan.listRows); err != nil {
		return err
	}
	if err := r.d.configure(coldPool); err != nil { // nothing boots meanwhile
		return err
	}
	if err := r.d.Start(ctx); err != nil {
		return err
	}
	if err := r.connect(ctx); err != nil {
		return err
	}
	var lat []float64
	for i := range r.plan.lists + 1 {
		start := time.Now()
		res, err := testdaemon.Call[struct {
			Count int `json:"count"`
		}](ctx, r.s, "workspace_list", map[string]any{})
		if err != nil {
			return err
		}
		if res.Count < r.plan.listRows {
			return fmt.Errorf("workspace_list showed %d workspaces, want at least %d", res.Count, r.plan.listRows)
		}
		if i > 0 {
			lat = append(lat, ms(time.Since(start)))
		}
	}
	r.add(newFigure(FigList, "ms", lat))
	return nil
}

// fillDB records n stopped workspaces owned by a new session.
func fillDB(ctx context.Context, path string, n int) error {
	st, err := state.Open(ctx, path)
	if err != nil {
		return err
	}
	defer st.Close()
	sess, err := st.CreateSession(ctx, state.Session{UID: 0, PID: os.Getpid(), Transport: "cli"})
	if err != nil {
		return err
	}
	for i := range n {
		if _, err := st.CreateWorkspace(ctx, state.Workspace{Name: fmt.Sprintf("listed-%03d", i), Owner: sess.ID,
			State: state.WorkspaceStopped, BaseImage: "default", VCPUs: 1, MemoryMB: 256, DiskGB: 10}); err != nil {
			return err
		}
	}
	return nil
}

// procKB reads a "Key:   123 kB" line of a /proc file.
func procKB(path, key string) (float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	if v := meminfoKB(string(b), key); v > 0 {
		return v, nil
	}
	return 0, fmt.Errorf("%s: no %s line", path, key)
}

// meminfoKB is the value, in kB, of the line starting with key in a
// meminfo-style text; 0 when missing.
func meminfoKB(text, key string) float64 {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), key)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		v, _ := strconv.ParseFloat(f[0], 64)
		return v
	}
	return 0
}

// warmCreates restarts the daemon with a warm pool of one VM and the memory
// template on, waits until both are ready, then times, in turn, a create
// that claims the pool VM (and waits for the pool to refill) and a
// default-size create that restores the template. Cold creates are the
// floor of both.
func (r *run) warmCreates(ctx context.Context) error {
	// The bench workspace goes first: at most two VMs run at once.
	if err := r.destroy(ctx, r.ws); err != nil {
		return err
	}
	if err := r.d.Stop(); err != nil {
		return err
	}
	r.s.Close()
	r.s = nil
	if err := r.d.configure(warmPool); err != nil {
		return err
	}
	ready, _ := r.d.waitLog(ctx, "pool VM ready", -1, 0)
	built, _ := r.d.waitLog(ctx, "memory template built", -1, 0)
	if err := r.d.Start(ctx); err != nil {
		return err
	}
	if err := r.connect(ctx); err != nil {
		return err
	}
	var err error
	if _, err = r.d.waitLog(ctx, "memory template built", built, 5*time.Minute); err != nil {
		return err
	}
	if ready, err = r.d.waitLog(ctx, "pool VM ready", ready, 5*time.Minute); err != nil {
		return err
	}
	restored := r.d.logCount("from_template=true")
	var pool, tmpl []float64
	for i := range r.plan.boots {
		w, took, err := r.createArgs(ctx, map[string]any{"name": fmt.Sprintf("pool-%d", i), "from_pool": true})
		if err != nil {
			return err
		}
		if !w.FromPool {
			return fmt.Errorf("the pool was full and idle, yet pool-%d did not come from it", i)
		}
		pool = append(pool, ms(took))
		if err := r.destroy(ctx, w.ID); err != nil {
			return err
		}
		if ready, err = r.d.waitLog(ctx, "pool VM ready", ready, 5*time.Minute); err != nil {
			return err
		}
		w, took, err = r.createArgs(ctx, map[string]any{"name": fmt.Sprintf("template-%d", i)})
		if err != nil {
			return err
		}
		tmpl = append(tmpl, ms(took))
		if err := r.destroy(ctx, w.ID); err != nil {
			return err
		}
	}
	cold, _ := r.find(FigCreateCold)
	r.add(newFigure(FigCreatePool, "ms", pool).withFloor(cold).
		withTarget("<= 0.1x cold create", func(f Figure) bool { return *f.Ratio <= 0.1 }))
	t := newFigure(FigCreateTemplate, "ms", tmpl).withFloor(cold)
	if n := r.d.logCount("from_template=true") - restored; n != len(tmpl) {
		return fmt.Errorf("%d of %d default-size creates restored the memory template", n, len(tmpl))
	}
	r.add(t)
	return nil
}
