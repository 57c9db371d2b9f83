package ledger

// SetBeforeCommitFn swaps the fault hook (Options.BeforeCommit) while the
// writer runs; nil removes it. Tests only.
func (l *Ledger) SetBeforeCommitFn(fn func() error) {
	if fn == nil {
		l.beforeCommit.Store(nil)
		return
	}
	l.beforeCommit.Store(&fn)
}

// WithFreelist sets the bbolt freelist knobs benchmarks compare.
func WithFreelist(o Options, sync, array bool) Options {
	o.freelistSync, o.freelistArray = sync, array
	return o
}

// WithoutCoalescing makes the writer store every denial as its own record.
func WithoutCoalescing(o Options) Options {
	o.noCoalesce = true
	return o
}
