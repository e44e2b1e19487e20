// Package cleanup undoes partial work: steps register how to undo
// themselves, and unless the whole operation succeeds and releases the
// stack, they are undone in reverse order (gVisor's pkg/cleanup habit).
//
//	cu := cleanup.Make()
//	defer cu.Clean()
//	... cu.Add(func() { undo step }) ...
//	cu.Release() // success: keep everything
package cleanup

// Cleanup is a stack of undo functions.
type Cleanup struct {
	fns []func()
}

// Make returns an empty stack.
func Make() Cleanup { return Cleanup{} }

// Add pushes an undo function.
func (c *Cleanup) Add(f func()) { c.fns = append(c.fns, f) }

// Release forgets every undo function: the work is kept.
func (c *Cleanup) Release() { c.fns = nil }

// Clean runs the undo functions still on the stack, last first.
func (c *Cleanup) Clean() {
	for i := len(c.fns) - 1; i >= 0; i-- {
		c.fns[i]()
	}
	c.fns = nil
}
