package meter

// AddEvent counts one call in the period counter: the counting rule, in
// one place for the ledger's aggregates, its verify and its checkpoints.
func (c *Counter) AddEvent(ev *Event) {
	if ev.Decision == Denied {
		c.Denied++
	} else {
		c.Calls++
		if ev.Overage {
			c.Overage++
		}
	}
	if ev.Time.After(c.LastCallAt) {
		c.LastCallAt = ev.Time
	}
}

// Add adds another counter's calls of the same account and period.
func (c *Counter) Add(o Counter) {
	c.Calls += o.Calls
	c.Overage += o.Overage
	c.Denied += o.Denied
	if o.LastCallAt.After(c.LastCallAt) {
		c.LastCallAt = o.LastCallAt
	}
}
