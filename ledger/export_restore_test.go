package ledger

// SetLinkFile replaces the hard-link call of Restore (a file system
// without hard links fails it) and returns a function that puts os.Link
// back. Tests only; not safe while a restore runs.
func SetLinkFile(fn func(oldname, newname string) error) (reset func()) {
	prev := linkFile
	linkFile = fn
	return func() { linkFile = prev }
}
