package ledger

// SetBeforeCommitFn installs a fault hook the writer calls inside each
// transaction just before commit; a non-nil error aborts the commit. Tests
// only.
func (l *Ledger) SetBeforeCommitFn(fn func() error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.beforeCommitFn = fn
}
