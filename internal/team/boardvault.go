package team

import (
	"context"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/vault"
)

// BoardVault is the vault as the vault tool sees it, with the task board's
// rules: a change to a note under teams/{team}/tasks/ whose dependencies
// would form a cycle is refused and nothing is written, and every change
// there regenerates the team's INDEX.md. Everything else passes through.
type BoardVault struct {
	*vault.Vault
	s *Service
}

// Board returns v with the task board's rules.
func (s *Service) Board(v *vault.Vault) *BoardVault { return &BoardVault{Vault: v, s: s} }

// guarded applies edit to the note at p through an atomic read-modify-write
// that checks the result first when p is a task.
func (b *BoardVault) guarded(ctx context.Context, p string, edit func(old []byte, exists bool) ([]byte, error)) (*vault.WriteResult, error) {
	return b.s.updateTask(ctx, b.Vault, p, edit)
}

// taskUpdater is the vault's atomic read-modify-write.
type taskUpdater interface {
	Update(ctx context.Context, p string, fn func(old []byte, exists bool) ([]byte, error)) (*vault.WriteResult, error)
}

// updateTask is the one way a task note changes: edit runs inside v's
// atomic read-modify-write, its result is checked (frontmatter, statuses,
// dependency cycles) before anything is written, and the team's INDEX.md
// is regenerated after.
func (s *Service) updateTask(ctx context.Context, v taskUpdater, p string, edit func(old []byte, exists bool) ([]byte, error)) (*vault.WriteResult, error) {
	team, task, ok := TaskPath(p)
	if !ok {
		return nil, errNotTask
	}
	res, err := v.Update(ctx, p, func(old []byte, exists bool) ([]byte, error) {
		nb, err := edit(old, exists)
		if err != nil {
			return nil, err
		}
		if err := s.checkTask(ctx, team, task, nb); err != nil {
			return nil, err
		}
		return nb, nil
	})
	if err != nil {
		return nil, err
	}
	s.reindexTask(ctx, p)
	return res, nil
}

var errNotTask = errdefs.Invalidf("path: not a task")

func (b *BoardVault) reindex(ctx context.Context, p string) { b.s.reindexTask(ctx, p) }

// reindexTask regenerates the INDEX.md of the board p is a task of.
func (s *Service) reindexTask(ctx context.Context, p string) {
	if team, _, ok := TaskPath(p); ok {
		if err := s.Reindex(ctx, team); err != nil {
			s.log.Error("regenerating a task board index", "team", team, "err", err)
		}
	}
}

// Write is vault Write, checked on a task board.
func (b *BoardVault) Write(ctx context.Context, p string, content []byte, mode vault.WriteMode) (*vault.WriteResult, error) {
	if _, _, ok := TaskPath(p); !ok {
		return b.Vault.Write(ctx, p, content, mode)
	}
	switch mode {
	case vault.Overwrite, vault.Append, vault.Prepend:
	default:
		return nil, errdefs.Invalidf("mode: must be overwrite, append or prepend")
	}
	return b.guarded(ctx, p, func(old []byte, exists bool) ([]byte, error) {
		switch {
		case !exists || mode == vault.Overwrite:
			return content, nil
		case mode == vault.Append:
			return append(append([]byte{}, old...), content...), nil
		default:
			d := vault.ParseDocument(old)
			d.SetBody(append(append([]byte{}, content...), d.Body()...))
			return d.Bytes(), nil
		}
	})
}

// SetFrontmatter is vault SetFrontmatter, checked on a task board.
func (b *BoardVault) SetFrontmatter(ctx context.Context, p, key string, value any) (*vault.WriteResult, error) {
	if _, _, ok := TaskPath(p); !ok {
		return b.Vault.SetFrontmatter(ctx, p, key, value)
	}
	return b.guarded(ctx, p, setFrontmatter(key, value))
}

// setFrontmatter is the edit that sets one frontmatter key of an existing
// note, keeping the rest of the note as it is.
func setFrontmatter(key string, value any) func(old []byte, exists bool) ([]byte, error) {
	return func(old []byte, exists bool) ([]byte, error) {
		if !exists {
			return nil, errdefs.NotFoundf("path: no such note")
		}
		d := vault.ParseDocument(old)
		if err := d.Set(key, value); err != nil {
			return nil, errdefs.Invalidf("value: %v", err)
		}
		return d.Bytes(), nil
	}
}

// DeleteFrontmatter is vault DeleteFrontmatter; the index follows.
func (b *BoardVault) DeleteFrontmatter(ctx context.Context, p, key string) (bool, error) {
	ok, err := b.Vault.DeleteFrontmatter(ctx, p, key)
	if err == nil {
		b.reindex(ctx, p)
	}
	return ok, err
}

// Replace is vault Replace, checked on a task board.
func (b *BoardVault) Replace(ctx context.Context, p, old, new string, regex bool) (int, error) {
	if _, _, ok := TaskPath(p); !ok {
		return b.Vault.Replace(ctx, p, old, new, regex)
	}
	before, err := b.Vault.Read(ctx, p)
	if err != nil {
		return 0, err
	}
	n, err := b.Vault.Replace(ctx, p, old, new, regex)
	if err != nil {
		return 0, err
	}
	after, err := b.Vault.Read(ctx, p)
	if err == nil {
		team, task, _ := TaskPath(p)
		if cerr := b.s.checkTask(ctx, team, task, after.Content); cerr != nil {
			// Put the note back as it was: the replacement made a cycle.
			if _, werr := b.Vault.Write(ctx, p, before.Content, vault.Overwrite); werr != nil {
				b.s.log.Error("restoring a task after a refused replace", "err", werr)
			}
			return 0, cerr
		}
	}
	b.reindex(ctx, p)
	return n, nil
}

// Delete is vault Delete; the index follows.
func (b *BoardVault) Delete(ctx context.Context, p string) error {
	if err := b.Vault.Delete(ctx, p); err != nil {
		return err
	}
	b.reindex(ctx, p)
	return nil
}

// Move is vault Move; the indexes of both boards follow.
func (b *BoardVault) Move(ctx context.Context, from, to string, overwrite bool) (*vault.MoveResult, error) {
	if _, _, ok := TaskPath(to); ok {
		n, err := b.Vault.Read(ctx, from)
		if err != nil {
			return nil, err
		}
		team, task, _ := TaskPath(to)
		if err := b.s.checkTask(ctx, team, task, n.Content); err != nil {
			return nil, err
		}
	}
	res, err := b.Vault.Move(ctx, from, to, overwrite)
	if err != nil {
		return nil, err
	}
	b.reindex(ctx, from)
	b.reindex(ctx, to)
	return res, nil
}
